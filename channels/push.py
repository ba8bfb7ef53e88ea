"""App push: FCM for the city's app, Web Push for browser subscriptions.

Confirmed means: `acknowledged`, and only that.  FCM and Web Push answer
"accepted", not "delivered", so a send is `sent` at best; the step waits for
the resident to tap the notification (the app POSTs the acknowledgement
token to `/hooks/push/ack`) and falls back when its timeout runs out.  A
stale token (FCM UNREGISTERED, Web Push 404/410) fails at once, falls back
at once, and marks the contact point dead.
"""

from __future__ import annotations

import re
import time

import orjson
from aiohttp import web

from gateway import keys
from gateway.problems import Problem

from .base import Channel, Message, Outcome, ProviderEvent
from .fcm import Fcm
from .notices import notices_for
from .sms_text import language_template
from .webpush import WebPush

# The acknowledgement token is the resident page token, `<alert id>.<random>`.
ACK_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{22,128})")
ACK_MAX_BYTES = 1024
# FCM keeps a message at most 28 days.
MAX_TTL_S = 28 * 86400
# FCM and Web Push cap a payload at 4 KiB; encryption and the other fields need room.
TITLE_MAX_BYTES = 200
BODY_MAX_BYTES = 1800
ANDROID_CHANNEL = "public_alerts"


class Push(Channel):
    name = "push"
    contact_types = frozenset({"fcm", "webpush"})
    retry_backoff_s = 10.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self.fcm = Fcm(ctx.settings, ctx.http)
        self.webpush = WebPush(ctx.settings, ctx.http)
        # Only the providers that are set up: the plan skips a contact point nobody can reach.
        self.contact_types = frozenset(t for t, client in (("fcm", self.fcm), ("webpush", self.webpush))
                                       if client.configured())

    def available(self) -> bool:
        return bool(self.contact_types)

    async def send(self, message: Message, recipient) -> Outcome:
        contact = recipient.contact
        title, body, data, ttl = self.notification_of(message)
        if contact["type"] == "fcm":
            return await self.fcm.send(fcm_message(contact["token"], title, body, data, ttl))
        payload = orjson.dumps({"title": title, "body": body, **data})
        subscription = {"endpoint": contact["endpoint"], "keys": contact["keys"]}
        return await self.webpush.send(subscription, payload, ttl=ttl, topic=message.alert_id.replace("_", "-"))

    async def preview(self, message: Message, recipient) -> dict:
        title, body, data, ttl = self.notification_of(message)
        contact = recipient.contact
        # What counts against the providers' 4 KiB: FCM's whole message, Web Push's plaintext.
        if contact["type"] == "fcm":
            sent = fcm_message(contact["token"], title, body, data, ttl)
        else:
            sent = {"title": title, "body": body, **data}
        return {"provider": contact["type"], "title": title, "body": body, "data": data, "ttl_s": ttl,
                "payload_bytes": len(orjson.dumps(sent))}

    def notification_of(self, message: Message) -> tuple[str, str, dict[str, str], int]:
        """Title, body, the data the app reads (the acknowledgement token, the page) and how long it keeps."""
        title, body = notification(message)
        data = {"ack": message.page_url.rsplit("/", 1)[-1], "alert": message.alert_id, "url": message.page_url,
                "lang": message.language, "severity": message.severity, "event": message.event}
        return title, body, data, ttl_s(message, self.ctx.settings.push_ttl_s)

    def routes(self) -> list:
        return [web.post("/hooks/push/ack", self.acknowledged)]

    async def acknowledged(self, request: web.Request) -> web.Response:
        """The resident tapped the notification; the app sends `{"token": "<ack>"}`.

        The token is the delivery's sealed page token (Vault.link_token), so
        nothing can be acknowledged without having received it; anything
        forged or unknown is 404.
        """
        too_large = Problem(413, "Body too large", f"The limit is {ACK_MAX_BYTES} bytes.")
        if (request.content_length or 0) > ACK_MAX_BYTES:
            raise too_large
        raw = await request.content.read(ACK_MAX_BYTES + 1)
        if len(raw) > ACK_MAX_BYTES:
            raise too_large
        try:
            token = orjson.loads(raw).get("token")
        except (orjson.JSONDecodeError, AttributeError):
            raise Problem(400, "Bad request", 'Expected {"token": "<ack>"}.')
        match = ACK_TOKEN.fullmatch(token) if isinstance(token, str) else None
        unknown = Problem(404, "Not found", "No such acknowledgement token.")
        if match is None:
            raise unknown
        aid, sealed = match.groups()
        redis = self.ctx.redis
        rid = self.ctx.registry.vault.resident_of(aid, sealed)
        if rid is None:
            raise unknown
        k, n, plan = await redis.hmget(keys.delivery(aid, rid), "k", "n", "p")
        sent = _push_leg(orjson.loads(plan), int(k)) if plan else None
        if sent is None:  # a page token of a delivery that never went by push
            raise unknown
        step, leg, contact = sent
        await self.ctx.report(ProviderEvent(
            aid, rid, step, int(n) if step == int(k) else 0, "acknowledged", await self._provider(rid, contact),
            channel=self.name, leg=leg))
        return web.Response(status=204)

    async def _provider(self, rid: str, contact: int) -> str:
        profile = await self.ctx.redis.hget(keys.resident(rid), "p")
        kinds = orjson.loads(profile)["k"] if profile else []
        return kinds[contact][0] if contact < len(kinds) else "push"

    async def close(self) -> None:
        await self.fcm.close()
        await self.webpush.close()


def _push_leg(plan: list, current: int) -> tuple[int, int, int] | None:
    """(step, leg, contact index) of the latest push leg sent so far."""
    for step in range(min(current, len(plan) - 1), -1, -1):
        for leg, (channel, contact) in enumerate(plan[step]["l"]):
            if channel == "push":
                return step, leg, contact
    return None


def notification(message: Message) -> tuple[str, str]:
    """Title and body in the message language, cut to fit a push payload."""
    text = language_template("push", message.language).render(
        severity=message.severity, headline=message.headline, body=message.body, instruction=message.instruction)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A drill says so in the title, and the notices open the body.
    notices = notices_for(message)
    title = f"[{notices.drill_tag}] {lines[0]}" if notices.drill else lines[0]
    return _cut(title, TITLE_MAX_BYTES), _cut("\n".join(notices.lines() + lines[1:]), BODY_MAX_BYTES)


def _cut(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode(errors="ignore").rstrip() + "…"


def ttl_s(message: Message, default: int) -> int:
    """Keep the notification while the alert holds, not past it."""
    if message.expires_at:
        return max(0, min(MAX_TTL_S, int(message.expires_at - time.time())))
    return default


def fcm_message(token: str, title: str, body: str, data: dict[str, str], ttl: int) -> dict:
    return {
        "token": token,
        "notification": {"title": title, "body": body},
        "data": data,
        "android": {"priority": "high", "ttl": f"{ttl}s",
                    "notification": {"channel_id": ANDROID_CHANNEL, "tag": data["alert"]}},
        "apns": {"headers": {"apns-priority": "10", "apns-push-type": "alert",
                             "apns-expiration": str(int(time.time()) + ttl)},
                 "payload": {"aps": {"sound": "default", "interruption-level": "time-sensitive"}}},
    }
