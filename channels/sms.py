"""SMS: the lifeline of 2G/3G feature phones.

Confirmed means: `delivered` when the carrier's delivery receipt says the
handset has it; `acknowledged` when the resident replies "1", "yes", "네" or
one of the alert's response codes.  Replies STOP/중지 opt out of
non-emergency alerts; free text is kept for the operators.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from gateway import keys

from .base import Channel, Outcome, ProviderEvent
from .replies import classify_reply, reply_confirmation
from .sms_text import render_sms
from .twilio import Twilio

# Twilio's MessageStatus -> attempt status (queued/accepted/sending say nothing new).
STATUS = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}
# Undelivered because the handset is off or out of coverage: worth another try.
TEMPORARY_ERRORS = {"30003", "30008", "30001", "30002"}
# The number itself is bad: unknown, or a landline.
DEAD_NUMBER_ERRORS = {"30005", "30006", "21211", "21614"}
SEGMENT_BUDGET = 6
REPLY_WINDOW_S = 3 * 86400


class Sms(Channel):
    name = "sms"
    contact_types = frozenset({"phone"})
    handsets = frozenset({"smartphone", "feature_phone"})
    proves = frozenset({"delivered", "acknowledged"})
    default_timeout_s = 300
    retry_backoff_s = 30.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self.twilio = Twilio(ctx.settings)

    def available(self) -> bool:
        return self.twilio.configured()

    async def send(self, message, recipient) -> Outcome:
        sms = render_sms(message, handset=recipient.contact["handset"], segment_budget=SEGMENT_BUDGET)
        callback = self.twilio.callback_url(f"/hooks/twilio/sms/{message.ref}")
        out = await self.twilio.send_sms(recipient.contact["number"], sms.text, callback)
        if out.status != "failed" and self.ctx.redis is not None:
            # The resident's next reply answers this message.
            await self.ctx.redis.set(keys.reply_target(recipient.resident_id), message.ref, ex=REPLY_WINDOW_S)
        out.contact_dead = out.error_code in DEAD_NUMBER_ERRORS
        return out

    def routes(self) -> list:
        return [
            web.post("/hooks/twilio/sms/inbound", self.inbound),
            web.post("/hooks/twilio/sms/{aid}/{rid}/{k}/{n}/{leg}", self.status),
        ]

    async def status(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        status = STATUS.get(form.get("MessageStatus", ""))
        if status:
            code = form.get("ErrorCode", "")
            m = request.match_info
            await self.ctx.report(ProviderEvent(
                m["aid"], m["rid"], int(m["k"]), int(m["n"]), status, "twilio", ref=form.get("MessageSid", ""),
                error_code=code, permanent=code not in TEMPORARY_ERRORS, channel=self.name, leg=int(m["leg"]),
                contact_dead=code in DEAD_NUMBER_ERRORS))
        return web.Response(status=204)

    async def inbound(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        answer = MessagingResponse()
        rid = await self.ctx.registry.by_phone(form.get("From", ""))
        if rid is None:
            return _twiml(answer)
        target = await self.ctx.redis.get(keys.reply_target(rid))
        ref = target.decode().split("/") if target else None
        codes = await self._response_codes(ref[0]) if ref else ()
        reply = classify_reply(form.get("Body", ""), codes)
        language = await self._language(rid)
        if reply.kind in ("ack", "response") and ref:
            aid, _, k, n, leg = ref
            await self.ctx.report(ProviderEvent(aid, rid, int(k), int(n), "acknowledged", "twilio",
                                                ref=form.get("MessageSid", ""), error_code=reply.code or "",
                                                channel=self.name, leg=int(leg)))
        elif reply.kind in ("opt_out", "opt_in"):
            await self.ctx.registry.set_non_emergency(rid, reply.kind == "opt_in")
            if ref and reply.kind == "opt_out":
                aid, _, k, n, leg = ref
                await self.ctx.report(ProviderEvent(aid, rid, int(k), int(n), "opted_out", "twilio",
                                                    channel=self.name, leg=int(leg)))
            answer.message(reply_confirmation(reply.kind, language))
        elif reply.kind == "help":
            answer.message(reply_confirmation("help", language))
        elif ref:
            await self.ctx.redis.rpush(keys.replies(ref[0]), orjson.dumps(
                {"resident": rid, "body": form.get("Body", "")[:1000], "sid": form.get("MessageSid", "")}))
        return _twiml(answer)

    async def _response_codes(self, aid: str) -> list[str]:
        doc = await self.ctx.redis.hget(keys.alert(aid), "doc")
        return [o["code"] for o in orjson.loads(doc).get("response_options", [])] if doc else []

    async def _language(self, rid: str) -> str:
        p = await self.ctx.redis.hget(keys.resident(rid), "p")
        return orjson.loads(p)["l"][0] if p else "en"


def _twiml(answer: MessagingResponse) -> web.Response:
    return web.Response(text=str(answer), content_type="application/xml")
