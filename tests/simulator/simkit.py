"""Pieces the simulator tests share: a stand-in gateway, recording Twilio clients."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from multidict import MultiDict
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "ab" * 16
AUTH_TOKEN = "f" * 32
FROM = "+15005550006"
AUTH_HEADER = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
VALIDATOR = RequestValidator(AUTH_TOKEN)


@dataclass
class Hit:
    method: str
    path: str
    url: str
    signature: str
    form: MultiDict
    headers: dict[str, str]
    at: float

    def query_param(self, name: str) -> str | None:
        return parse_qs(urlsplit(self.url).query).get(name, [None])[0]

    def signed(self) -> bool:
        """What the gateway checks: Twilio's RequestValidator over URL, form and header."""
        return VALIDATOR.validate(self.url, self.form, self.signature)


@dataclass
class GatewayDouble:
    """Plays the gateway: records webhooks, serves TwiML, fails on request."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    # path -> TwiML, or a function of the hit returning TwiML.
    twiml: dict[str, str | Callable[[Hit], str]] = field(default_factory=dict)
    # path -> how many more times to answer 503 before 200.
    failures: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        form = MultiDict(await request.post()) if request.method == "POST" else MultiDict()
        hit = Hit(
            request.method, request.path, str(request.url), request.headers.get("X-Twilio-Signature", ""),
            form, dict(request.headers), time.monotonic(),
        )
        self.hits.append(hit)
        if self.failures.get(request.path, 0) > 0:
            self.failures[request.path] -= 1
            return web.Response(status=503)
        served = self.twiml.get(request.path)
        if served is not None:
            text = served(hit) if callable(served) else served
            return web.Response(text=text, content_type="application/xml")
        return web.Response(text="")

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def statuses(self, path: str, name: str = "MessageStatus") -> list[str]:
        return [h.form.get(name) or h.query_param(name) for h in self.at(path)]


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


class RecordingHttpClient(TwilioHttpClient):
    """The library's own HTTP client, keeping (method, url, status, body) of each answer."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, int, str]] = []

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        self.seen.append((method, url, response.status_code, response.text))
        return response


class RecordingAsyncHttpClient(AsyncTwilioHttpClient):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, int, str]] = []

    async def request(self, method, url, *args, **kwargs):
        response = await super().request(method, url, *args, **kwargs)
        self.seen.append((method, url, response.status_code, response.text))
        return response


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """The sync client blocks; the simulator shares this loop, so run it aside."""
    return asyncio.to_thread(fn, *args, **kwargs)
