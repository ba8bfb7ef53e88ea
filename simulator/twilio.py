"""Twilio's REST API 2010-04-01, the part the gateway uses: Messages and Calls.

Requests and answers follow Twilio's own OpenAPI description (field names,
types, status values, error codes), so the unchanged `twilio` library works
against it with `client.api.base_url` pointed here. Each SMS then lives its
life on timers: queued -> sent -> delivered | undelivered, or failed, as the
recipient's behaviour says, with signed status callbacks and, for residents
who answer, an inbound reply.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from simulator import faults as fault_kinds
from simulator import voice
from simulator.behaviour import language_of, understands
from simulator.callbacks import API_VERSION, rfc2822_now

if TYPE_CHECKING:
    from simulator.app import Simulator

ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY = 1600

# error_message Twilio gives a message for each delivery error code.
DELIVERY_ERRORS = {
    30001: "Queue overflow",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
FAILED_DEFAULT_CODE = 30008

_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """SMS segments: GSM-7 fits 160 (153 when split), anything else UCS-2 70 (67)."""
    extended = 0
    for ch in body:
        if ch in _GSM7_EXTENDED:
            extended += 1
        elif ch not in _GSM7:
            units, single, split = len(body.encode("utf-16-le")) // 2, 70, 67
            break
    else:
        units, single, split = len(body) + extended, 160, 153
    return 1 if units <= single else -(-units // split)


def twilio_error(status: int, code: int, message: str) -> web.Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


MESSAGE_SUBRESOURCES = {"media": "Media"}
CALL_SUBRESOURCES = {
    "feedback": "Feedback",
    "notifications": "Notifications",
    "recordings": "Recordings",
    "streams": "Streams",
    "payments": "Payments",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
    "events": "Events",
    "siprec": "Siprec",
    "transcriptions": "Transcriptions",
}


def _shown(resource: dict[str, Any], collection: str, subresources: dict[str, str]) -> dict[str, Any]:
    """A resource as Twilio shows it; its URIs are derived here, not stored for every message."""
    uri = f"/2010-04-01/Accounts/{resource['account_sid']}/{collection}/{resource['sid']}"
    return {
        **resource,
        "uri": f"{uri}.json",
        "subresource_uris": {name: f"{uri}/{path}.json" for name, path in subresources.items()},
    }


def _message(resource: dict[str, Any]) -> dict[str, Any]:
    return _shown(resource, "Messages", MESSAGE_SUBRESOURCES)


def _call(resource: dict[str, Any]) -> dict[str, Any]:
    return _shown(resource, "Calls", CALL_SUBRESOURCES)


def _is_url(value: str) -> bool:
    """An absolute http(s) URL with a host, as urlsplit would tell, without its cost on every create."""
    scheme, sep, rest = value.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and rest[:1] not in ("", "/", "?", "#")


def _formatted(number: str) -> str:
    """How Twilio shows a number: NANP as (415) 867-5309, others as E.164."""
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


class TwilioAPI:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        credentials = f"{sim.config.account_sid}:{sim.config.auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{ACCOUNT}/Messages.json", self.create_message),
            web.get(f"{ACCOUNT}/Messages.json", self.list_messages),
            web.get(f"{ACCOUNT}/Messages/{{Sid}}.json", self.fetch_message),
            web.post(f"{ACCOUNT}/Calls.json", self.create_call),
            web.get(f"{ACCOUNT}/Calls.json", self.list_calls),
            web.get(f"{ACCOUNT}/Calls/{{Sid}}.json", self.fetch_call),
        ]

    def clear(self) -> None:
        self.messages.clear()
        self.calls.clear()

    async def _refuse(self, request: web.Request, provider: str) -> web.Response | None:
        """Twilio's answer when authentication or an injected fault stops the request."""
        authorization = request.headers.get("Authorization", "")
        if not (
            hmac.compare_digest(authorization, self._authorization)
            and request.match_info["AccountSid"] == self.sim.config.account_sid
        ):
            return twilio_error(401, 20003, "Authenticate")
        verdict = await self.sim.faults.admit(provider)
        if verdict is None:
            return None
        if verdict == fault_kinds.RESET:
            # The client sees the connection drop before any answer.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if verdict == fault_kinds.OUTAGE:
            return twilio_error(503, 20503, "Service Unavailable")
        if verdict == fault_kinds.RATE_LIMITED:
            return twilio_error(429, 20429, "Too Many Requests")
        return twilio_error(500, 20500, "Internal Server Error")

    async def _posted(self, request: web.Request, provider: str) -> MultiDictProxy | web.Response:
        """A create request's form, logged; or Twilio's refusal."""
        refused = await self._refuse(request, provider)
        if refused:
            return refused
        form = await request.post()
        self.sim.log_request(request, form)
        return form

    # --- Messages -----------------------------------------------------------

    async def create_message(self, request: web.Request) -> web.Response:
        form = await self._posted(request, "twilio-sms")
        if isinstance(form, web.Response):
            return form
        to, sender = form.get("To", ""), form.get("From", "")
        service = form.get("MessagingServiceSid") or None
        body, callback = form.get("Body", ""), form.get("StatusCallback") or None
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.getall("MediaUrl", []):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if callback and not _is_url(callback):
            return twilio_error(400, 21609, "Invalid 'StatusCallback'")
        record = self.sim.behaviour.by_phone(to)
        sms = record["sms"]
        if sms["error_code"] == 21614:
            return twilio_error(400, 21614, f"'To' number {to} is not a valid mobile number")

        sid = self.sim.new_sid("SM")
        now = rfc2822_now()
        message = {
            "body": body,
            "num_segments": str(segments(body)),
            "direction": "outbound-api",
            "from": sender or None,
            "to": to,
            "date_updated": now,
            "price": None,
            "error_message": None,
            "account_sid": self.sim.config.account_sid,
            "num_media": str(len(form.getall("MediaUrl", []))),
            "status": "queued",
            "messaging_service_sid": service,
            "sid": sid,
            "date_sent": None,
            "date_created": now,
            "error_code": None,
            "price_unit": "USD",
            "api_version": API_VERSION,
        }
        self.messages[sid] = message
        entry = self.sim.records.add(
            record["resident"] or to, "sms", "twilio-sms", sid, to=to, text=body, language=language_of(body), replies=[],
            status_callback=callback,
        )
        self._schedule((message, callback, entry, record))
        return _json(_message(message), 201)

    def _schedule(self, sms: tuple[dict, str | None, dict, dict]) -> None:
        """The message's future, on timers; `sms` is (resource, callback URL, record entry, behaviour)."""
        behaviour, later = sms[3]["sms"], self.sim.later
        fault = self.sim.faults.get("twilio-sms")
        if behaviour["outcome"] == "failed" or self.sim.faults.chance(fault.fail_rate):
            failed = behaviour["outcome"] == "failed" and behaviour["error_code"]
            later(min(0.5, behaviour["delay_s"]), self._advance, sms, "failed", failed or FAILED_DEFAULT_CODE)
            return
        sent_after = min(0.25, behaviour["delay_s"] / 2)
        later(sent_after, self._advance, sms, "sent", None)
        code = behaviour["error_code"] if behaviour["outcome"] == "undelivered" else None
        # Strictly after `sent`: timers due at the same instant may fire in any order.
        later(max(behaviour["delay_s"], sent_after + 0.001), self._advance, sms, behaviour["outcome"], code)

    def _advance(self, sms: tuple[dict, str | None, dict, dict], status: str, code: int | None) -> None:
        message, callback, entry, record = sms
        now = rfc2822_now()
        message["status"] = entry["status"] = status
        message["date_updated"] = now
        if message["from"] is None:
            # A Messaging Service picks its sender when the message leaves the queue.
            message["from"] = self.sim.config.messaging_number
        if status == "sent":
            message["date_sent"] = now
        if code:
            message["error_code"] = entry["error_code"] = code
            message["error_message"] = DELIVERY_ERRORS.get(code, "Unknown error")
        if status == "delivered":
            self.sim.records.receive(entry)
            reply = record["sms"]["reply"]
            if reply and understands(record, entry["language"]):
                self.sim.later(record["sms"]["reply_after_s"], self._reply, message, entry, reply)
        if callback:
            params = {
                "SmsSid": message["sid"],
                "SmsStatus": status,
                "MessageStatus": status,
                "To": message["to"],
                "MessageSid": message["sid"],
                "AccountSid": message["account_sid"],
                "From": message["from"],
                "ApiVersion": API_VERSION,
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if code:
                params["ErrorCode"] = str(code)
            if status in ("delivered", "undelivered"):
                params["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime())
            self.sim.callbacks.emit("twilio-sms", message["sid"], callback, params, final=status != "sent")

    def _reply(self, message: dict, entry: dict, body: str) -> None:
        """The resident answers the SMS; Twilio posts it to the inbound webhook."""
        sid = self.sim.new_sid("SM")
        now = rfc2822_now()
        inbound = {
            **message,
            "sid": sid,
            "body": body,
            "direction": "inbound",
            "status": "received",
            "from": message["to"],
            "to": message["from"],
            "num_segments": str(segments(body)),
            "num_media": "0",
            "date_created": now,
            "date_updated": now,
            "date_sent": now,
            "error_code": None,
            "error_message": None,
        }
        self.messages[sid] = inbound
        entry["replies"].append({"body": body, "sid": sid, "at": time.time()})
        params = {
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": inbound["to"],
            "NumSegments": inbound["num_segments"],
            "MessageSid": sid,
            "AccountSid": inbound["account_sid"],
            "From": inbound["from"],
            "ApiVersion": API_VERSION,
        }
        if inbound["messaging_service_sid"]:
            params["MessagingServiceSid"] = inbound["messaging_service_sid"]
        self.sim.stats["sms.replies"] += 1
        self.sim.callbacks.emit("twilio-sms", sid, self.sim.config.inbound_sms_url, params, final=True)

    async def fetch_message(self, request: web.Request) -> web.Response:
        return await self._fetch(request, "twilio-sms", self.messages, _message)

    async def list_messages(self, request: web.Request) -> web.Response:
        return await self._page(request, "twilio-sms", "messages", self.messages, _message, ("To", "From"))

    # --- Calls --------------------------------------------------------------

    async def create_call(self, request: web.Request) -> web.Response:
        form = await self._posted(request, "twilio-voice")
        if isinstance(form, web.Response):
            return form
        to, sender = form.get("To", ""), form.get("From", "")
        url, twiml = form.get("Url", ""), form.get("Twiml", "")
        callback = form.get("StatusCallback") or None
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not E164.match(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender:
            return twilio_error(400, 21213, "No 'From' number is specified")
        if not twiml and not _is_url(url):
            return twilio_error(400, 21205, f"Url is not a valid URL: {url}")
        if callback and not _is_url(callback):
            return twilio_error(400, 21609, "Invalid 'StatusCallback'")
        timeout = form.get("Timeout", "60")
        # Twilio rings for Timeout seconds, clamped to 5..600.
        timeout_s = float(min(max(int(timeout), 5), 600)) if timeout.isdigit() else 60.0

        sid = self.sim.new_sid("CA")
        now = rfc2822_now()
        resource = {
            "sid": sid,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "account_sid": self.sim.config.account_sid,
            "to": to,
            "to_formatted": _formatted(to),
            "from": sender,
            "from_formatted": _formatted(sender),
            "phone_number_sid": None,
            "status": "queued",
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
        }
        self.calls[sid] = resource
        record = self.sim.behaviour.by_phone(to)
        events = frozenset(form.getall("StatusCallbackEvent", [])) or frozenset({"completed"})
        detection = form.get("MachineDetection")
        call = voice.Call(
            resource=resource,
            url=url or None,
            method=form.get("Method", "POST").upper(),
            twiml=twiml or None,
            status_callback=callback,
            callback_method=form.get("StatusCallbackMethod", "POST").upper(),
            events=events,
            machine_detection=detection if detection in voice.MACHINE_DETECTION else None,
            timeout_s=timeout_s,
            behaviour=record,
            entry=self.sim.records.add(
                record["resident"] or to, "voice", "twilio-voice", sid, to=to,
                heard=[], pressed=[], answered_by=None, duration_s=None, errors=[], status_callback=callback,
            ),
        )
        voice.place(self.sim, call)
        return _json(_call(resource), 201)

    async def fetch_call(self, request: web.Request) -> web.Response:
        return await self._fetch(request, "twilio-voice", self.calls, _call)

    async def list_calls(self, request: web.Request) -> web.Response:
        return await self._page(request, "twilio-voice", "calls", self.calls, _call, ("To", "From", "Status"))

    async def _fetch(
        self,
        request: web.Request,
        provider: str,
        store: dict[str, dict],
        show: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> web.Response:
        """One message or call by its SID."""
        refused = await self._refuse(request, provider)
        if refused:
            return refused
        resource = store.get(request.match_info["Sid"])
        if resource is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return _json(show(resource))

    async def _page(
        self,
        request: web.Request,
        provider: str,
        name: str,
        store: dict[str, dict],
        show: Callable[[dict[str, Any]], dict[str, Any]],
        filters: tuple[str, ...],
    ) -> web.Response:
        """One page of a list, newest first, in Twilio's list envelope."""
        refused = await self._refuse(request, provider)
        if refused:
            return refused
        query = request.query
        wanted = {f.lower(): query[f] for f in filters if query.get(f)}
        try:
            size = min(max(int(query.get("PageSize", 50)), 1), 1000)
            page = max(int(query.get("Page", 0)), 0)
        except ValueError:
            return twilio_error(400, 20001, "PageSize and Page must be integers")
        matches = [r for r in reversed(store.values()) if all(r[k] == v for k, v in wanted.items())]
        start = page * size
        chunk = matches[start : start + size]
        base = request.path

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**{f: query[f] for f in filters if query.get(f)}, 'PageSize': size, 'Page': number})}"

        return _json(
            {
                name: [show(r) for r in chunk],
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
                "page": page,
                "page_size": size,
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if start + size < len(matches) else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            }
        )
