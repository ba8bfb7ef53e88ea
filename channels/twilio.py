"""Twilio, the provider of SMS and voice calls, over its REST API 2010-04-01.

The real `twilio` library with its async client, its requests carried by
`channels/http1.py`; `TWILIO_API_BASE` points it at the simulator or any
Twilio-compatible endpoint.  Inbound webhooks are
checked with `RequestValidator` against the URL Twilio was given.

Messages and calls are created and fetched through the library's API
version (`client.api.v2010`: its auth, base URL and errors), which answers
with the resource's JSON, not through the resource classes: those turn every
answer into an instance, parsing its three RFC 2822 dates with the email
module, and a worker reads only the sid and the status (profiled: building
the instances cost a tenth of a worker's time at a fan-out).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from functools import lru_cache

from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

# The client imports this on its first message or call; imported here, a
# worker pool's parent holds it before it forks, not every child again.
from twilio.rest.api import v2010 as _v2010  # noqa: F401

from gateway.forms import posted_form

from .base import UNANSWERED, Outcome
from .http1 import Http1Client

NAME = "twilio"
# A look-up before escalating waits no longer than this: a provider that hangs
# must not hold back the residents whose step is over.
LOOKUP_TIMEOUT_S = 5.0
# Errors that will not go away by trying again: bad or unknown numbers.
PERMANENT_ERRORS = {21211, 21214, 21217, 21612, 21614, 21610, 21408, 30005, 30006, 30007, 32203}


# quote_plus with nothing kept but letters, digits and "_.-~": a space becomes
# "+", every other byte of the UTF-8 %XX.  As a translation table it runs in C,
# three times quicker than quote_plus, whose loop looks up each byte in Python.
_FORM_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_QUOTE = {b: "+" if b == 0x20 else chr(b) if b in _FORM_SAFE else f"%{b:02X}" for b in range(256)}


@lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    return value.encode().decode("latin-1").translate(_FORM_QUOTE)


def form_body(data: dict) -> bytes:
    """The form as `urlencode(data, doseq=True)` writes it; the values every
    message of a fan-out shares (sender, text) are quoted once."""
    pairs = []
    for key, value in data.items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            pairs.append(f"{_quoted(str(key))}={_quoted(str(item))}")
    return "&".join(pairs).encode()


class TwilioHttp(AsyncHttpClient):
    """The twilio library's requests, carried by `Http1Client`.

    The library still builds every request and parses every response; this
    transport encodes the form once, reuses one Authorization header, and
    formats log lines only when someone reads them.
    """

    def __init__(self, timeout_s: float = 15, connections: int = 256):
        super().__init__(logging.getLogger("twilio.http_client"), is_async=True, timeout=timeout_s)
        self.http = Http1Client(limit_per_origin=connections)
        self._auth: tuple | None = None
        self._auth_header = ""

    async def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                      allow_redirects=False) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            if auth != self._auth:
                self._auth = auth
                self._auth_header = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = self._auth_header
        body = b""
        if data:
            body = form_body(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.logger.isEnabledFor(logging.INFO):
            self.log_request({"method": method, "url": url, "params": params, "headers": headers})
        status, raw_headers, content = await self.http.request(method, url, params=params, headers=headers, body=body,
                                                               timeout_s=timeout or self.timeout)
        response = Response(status, content.decode(), {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers})
        self._test_only_last_response = response
        return response

    async def close(self) -> None:
        await self.http.close()


class Twilio:
    def __init__(self, settings):
        self.settings = settings
        self.validator = RequestValidator(settings.twilio_auth_token)
        self._client: Client | None = None

    def configured(self) -> bool:
        return bool(self.settings.twilio_account_sid and self.settings.twilio_auth_token)

    @property
    def client(self) -> Client:
        # Built lazily: the async HTTP client must be made inside the running loop.
        if self._client is None:
            http = TwilioHttp()
            self._client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token,
                                  http_client=http)
            self._client.api.base_url = self.settings.twilio_api_base
        return self._client

    def callback_url(self, path: str) -> str:
        return f"{self.settings.public_url}{path}"

    def _path(self, resource: str) -> str:
        return f"/Accounts/{self.settings.twilio_account_sid}/{resource}.json"

    async def _create(self, resource: str, form: dict) -> dict:
        return await self.client.api.v2010.create_async(method="POST", uri=self._path(resource), data=form,
                                                        headers={"Accept": "application/json"})

    async def _fetch(self, resource: str) -> dict:
        return await self.client.api.v2010.fetch_async(method="GET", uri=self._path(resource),
                                                       headers={"Accept": "application/json"})

    async def send_sms(self, to: str, body: str, status_callback: str) -> Outcome:
        try:
            msg = await self._create("Messages", {"To": to, "From": self.settings.twilio_from_number, "Body": body,
                                                  "StatusCallback": status_callback})
        except TwilioRestException as e:
            return failure(e)
        except TimeoutError:
            return unanswered()
        except Exception as e:  # refused, reset: the provider may come back
            return Outcome("failed", NAME, error_code="network", permanent=False, detail=type(e).__name__)
        return Outcome(str(msg["status"]), NAME, ref=msg["sid"])

    async def call(self, to: str, url: str, status_callback: str, timeout_s: int = 30) -> Outcome:
        try:
            call = await self._create("Calls", {
                "To": to, "From": self.settings.twilio_from_number, "Url": url, "Method": "POST",
                "StatusCallback": status_callback, "StatusCallbackMethod": "POST",
                # Only the call's end moves a delivery (busy, no-answer, failed, completed):
                # progress events would be three more webhooks per call to verify and ignore.
                "StatusCallbackEvent": ["completed"],
                "MachineDetection": "Enable", "Timeout": timeout_s})
        except TwilioRestException as e:
            return failure(e)
        except TimeoutError:
            return unanswered()
        except Exception as e:
            return Outcome("failed", NAME, error_code="network", permanent=False, detail=type(e).__name__)
        return Outcome("queued", NAME, ref=call["sid"])

    async def message_status(self, sid: str) -> tuple[str, str] | None:
        """(MessageStatus, ErrorCode) of a message as Twilio has it now; None if Twilio does not say."""
        try:
            # asyncio.timeout, not wait_for: no task of its own for every look-up.
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                msg = await self._fetch(f"Messages/{sid}")
        except Exception:  # refused, unreachable or too slow: the timer escalates as before
            return None
        return str(msg["status"]), str(msg.get("error_code") or "")

    async def call_status(self, sid: str) -> str | None:
        """A call's CallStatus as Twilio has it now; None if Twilio does not say."""
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                call = await self._fetch(f"Calls/{sid}")
        except Exception:
            return None
        return str(call["status"])

    async def verified_form(self, request: web.Request) -> dict[str, str]:
        """The webhook's form fields, or 403 if Twilio did not sign them."""
        form = await posted_form(request)
        params = {k: v for k, v in form.items()}
        url = self.callback_url(request.path_qs)
        if not self.validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
            raise web.HTTPForbidden(text="bad signature")
        return params

    async def close(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None


def unanswered() -> Outcome:
    """Twilio took the request and never answered (channels/base.py UNANSWERED)."""
    return Outcome(UNANSWERED, NAME, error_code="timeout", permanent=False)


def failure(e: TwilioRestException) -> Outcome:
    permanent = e.code in PERMANENT_ERRORS or (400 <= (e.status or 0) < 500 and e.status != 429)
    return Outcome("failed", NAME, error_code=str(e.code or e.status), permanent=permanent, detail=e.msg[:200])
