"""SMS: the lifeline of 2G/3G feature phones.

Confirmed means: `delivered` when the carrier's delivery receipt says the
handset has it; `acknowledged` when the resident replies "1", "yes", "네" or
one of the alert's response codes.  Replies STOP/중지 opt out of
non-emergency alerts; free text is kept for the operators.

The channel holds every configured SMS provider (Twilio; Kannel in front of
the carriers' SMSCs).  `routing.Router` splits the traffic by provider
health, shared by all workers; a provider that refuses a send or cannot be
reached is passed over for the next one within the same attempt, so the
resident never waits on a provider outage.  `pacing.Pacer` keeps each
provider account and sender number under its rate limit.
"""

from __future__ import annotations

import math
import time

import orjson
from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from gateway import keys

from .base import ATTEMPT_PATH, UNANSWERED, Channel, Message, Outcome, ProviderEvent, Recipient
from .kannel import Kannel, read_report
from .pacing import Bucket, Pacer
from .replies import classify_reply, reply_confirmation
from .routing import Router, parse_base
from .sms_text import UCS2, RenderedSms, render_sms
from .twilio import Twilio

# Twilio's MessageStatus -> attempt status (queued/accepted/sending say nothing new).
STATUS = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}
# Undelivered because the handset is off or out of coverage: worth another try.
TEMPORARY_ERRORS = {"30003", "30008", "30001", "30002"}
# The number itself is bad: unknown, or a landline.
DEAD_NUMBER_ERRORS = {"30005", "30006", "21211", "21614"}
# Receipts that blame Twilio or the carrier behind it, not the handset.
TWILIO_FAULTS = {"30001", "30002", "30008", "30010", "30500"}
# Refusals about our Twilio account (credentials, sender), not the message.
TWILIO_ACCOUNT_ERRORS = {"20003", "20005", "21212", "21606"}
SEGMENT_BUDGET = 6


def twilio_receipt(message_status: str, code: str, sid: str) -> Outcome | None:
    """What Twilio's MessageStatus says of an attempt (callback or look-up); None if nothing new."""
    status = STATUS.get(message_status)
    if status is None:
        return None
    return Outcome(status, "twilio", ref=sid, error_code=code, permanent=code not in TEMPORARY_ERRORS,
                   contact_dead=code in DEAD_NUMBER_ERRORS)


class TwilioSms:
    name = "twilio"

    def __init__(self, settings):
        self.client = Twilio(settings)
        self.sender = settings.twilio_from_number

    def configured(self) -> bool:
        return self.client.configured()

    async def send(self, message: Message, to: str, sms: RenderedSms, sent_ms: int) -> Outcome:
        callback = self.client.callback_url(f"/hooks/twilio/sms/{message.ref}?t={sent_ms}")
        return await self.client.send_sms(to, sms.text, callback)

    def provider_at_fault(self, out: Outcome) -> bool:
        return not out.permanent or out.error_code in TWILIO_ACCOUNT_ERRORS

    async def close(self) -> None:
        await self.client.close()


class KannelSms:
    name = "kannel"

    def __init__(self, settings, http):
        self.client = Kannel(settings, http)
        self.sender = self.client.sender

    def configured(self) -> bool:
        return self.client.configured()

    async def send(self, message: Message, to: str, sms: RenderedSms, sent_ms: int) -> Outcome:
        validity = None
        if message.expires_at:
            validity = max(1, math.ceil((message.expires_at - time.time()) / 60))
        return await self.client.send_sms(to, sms.text, unicode=sms.encoding == UCS2,
                                          dlr_url=self.client.dlr_url(message.ref, sent_ms), validity_min=validity)

    def provider_at_fault(self, out: Outcome) -> bool:
        return out.error_code != "400"

    async def close(self) -> None:
        await self.client.close()


class Sms(Channel):
    name = "sms"
    contact_types = frozenset({"phone"})
    handsets = frozenset({"smartphone", "feature_phone"})
    retry_backoff_s = 30.0

    def __init__(self, ctx):
        super().__init__(ctx)
        settings = ctx.settings
        # In order of preference; the Twilio client stays reachable for its webhooks.
        self.twilio = TwilioSms(settings)
        self.kannel = KannelSms(settings, ctx.http)
        self.providers = {p.name: p for p in (self.twilio, self.kannel) if p.configured()}
        self.router = Router(ctx.redis, self.name, parse_base(settings.sms_providers, list(self.providers)))
        self.pacer = Pacer(ctx.redis)
        # Each provider's pace buckets: the account's and its sender number's.
        self.buckets = {p.name: (Bucket(keys.pace_bucket(self.name, p.name), settings.sms_rate_per_provider),
                                 Bucket(keys.pace_bucket(self.name, p.name, p.sender), settings.sms_rate_per_sender))
                        for p in self.providers.values()}

    def available(self) -> bool:
        return bool(self.providers)

    def render(self, message: Message, recipient: Recipient) -> RenderedSms:
        return render_sms(message, handset=recipient.contact["handset"], segment_budget=SEGMENT_BUDGET)

    async def send(self, message, recipient) -> Outcome:
        sms = self.render(message, recipient)
        to = recipient.contact["number"]
        refused: list[Outcome] = []
        out = None
        for name in self.router.order(await self.router.split()):
            provider = self.providers[name]
            await self.pacer.wait(*self.buckets[name])
            result = await provider.send(message, to, sms, int(time.time() * 1000))
            if result.status == "failed" and provider.provider_at_fault(result):
                self.router.record(name, failed=1)
                refused.append(result)
                continue
            if result.status == UNANSWERED:
                # It may have gone: no other provider sends it too, but traffic turns away from this one.
                self.router.record(name, failed=1)
                out = result
                break
            # Accepted, or refused for the number or the text: every provider would say the same.
            self.router.record(name, sent=1)
            out = result
            break
        if out is None:
            # Every provider refused or could not be reached: try again later.
            out = refused[0]
            out.permanent = False
            out.detail = "; ".join(f"{r.provider} {r.error_code}" for r in refused)[:200]
        elif refused:
            out.detail = ("failed over from " + ", ".join(f"{r.provider} ({r.error_code})" for r in refused))[:200]
        out.contact_dead = out.contact_dead or out.error_code in DEAD_NUMBER_ERRORS
        return out

    def record(self, pipe, message, recipient, outcome) -> None:
        if outcome.status != "failed":
            # The resident's next reply answers this message.
            self.ctx.registry.remember_reply(pipe, recipient.resident_id, message.ref)

    async def flush(self) -> None:
        await self.router.flush()

    async def preview(self, message, recipient) -> dict:
        sms = self.render(message, recipient)
        return {
            "text": sms.text,
            "encoding": sms.encoding,
            "segments": sms.segments,
            "characters": len(sms.text),
            "link_included": sms.link_included,
            "used_short_form": sms.used_short_form,
            "segment_budget": SEGMENT_BUDGET,
        }

    def routes(self) -> list:
        return [
            web.post("/hooks/twilio/sms/inbound", self.inbound),
            web.post(f"/hooks/twilio/sms/{ATTEMPT_PATH}", self.status),
            web.get("/hooks/kannel/inbound", self.kannel_inbound),
            web.get(f"/hooks/kannel/dlr/{ATTEMPT_PATH}", self.kannel_report),
        ]

    # Delivery reports ----------------------------------------------------------

    def _receipt_ms(self, request: web.Request) -> int | None:
        t = request.query.get("t", "")
        return max(0, int(time.time() * 1000) - int(t)) if t.isdigit() else None

    async def status(self, request: web.Request) -> web.Response:
        """Twilio's status callback for one message."""
        form = await self.twilio.client.verified_form(request)
        out = twilio_receipt(form.get("MessageStatus", ""), form.get("ErrorCode", ""), form.get("MessageSid", ""))
        if out:
            m = request.match_info
            if out.status in ("delivered", "failed"):
                self._record_receipt("twilio", request, delivered=out.status == "delivered",
                                     provider_fault=out.error_code in TWILIO_FAULTS)
            await self.ctx.report(ProviderEvent(
                m["aid"], m["rid"], int(m["k"]), int(m["n"]), out.status, "twilio", ref=out.ref,
                error_code=out.error_code, permanent=out.permanent, channel=self.name, leg=int(m["leg"]),
                contact_dead=out.contact_dead))
        return web.Response(status=204)

    async def look_up(self, provider: str, ref: str) -> Outcome | None:
        if provider != "twilio" or "twilio" not in self.providers:
            return None
        answer = await self.twilio.client.message_status(ref)
        out = twilio_receipt(*answer, ref) if answer else None
        return out if out and out.status in ("delivered", "failed") else None

    async def kannel_report(self, request: web.Request) -> web.Response:
        """Kannel's delivery report (dlr-url) for one message."""
        q = request.query
        self.kannel.client.verify(request, q.get("t", ""))
        kind = q.get("type", "")
        report = read_report(int(kind), q.get("reply", ""), q.get("id", "")) if kind.isdigit() else None
        if report is not None:
            if report.status in ("delivered", "failed"):
                self._record_receipt("kannel", request, delivered=report.status == "delivered",
                                     provider_fault=report.provider_fault)
            m = request.match_info
            await self.ctx.report(ProviderEvent(
                m["aid"], m["rid"], int(m["k"]), int(m["n"]), report.status, "kannel", ref=report.foreign_id,
                error_code=report.error_code, permanent=report.permanent, channel=self.name, leg=int(m["leg"]),
                contact_dead=report.contact_dead))
        return web.Response(status=204)

    def _record_receipt(self, provider: str, request: web.Request, *, delivered: bool, provider_fault: bool) -> None:
        if provider not in self.providers:
            return
        counts = {"delivered": 1} if delivered else ({"undelivered": 1} if provider_fault else {})
        receipt_ms = self._receipt_ms(request)
        if receipt_ms is not None:
            counts["receipt_ms"] = receipt_ms
        if counts:
            self.router.record(provider, **counts)

    # Replies -------------------------------------------------------------------

    async def inbound(self, request: web.Request) -> web.Response:
        """A resident's SMS to our Twilio number."""
        form = await self.twilio.client.verified_form(request)
        answer = MessagingResponse()
        text = await self._reply(form.get("From", ""), form.get("Body", ""), form.get("MessageSid", ""), "twilio")
        if text:
            answer.message(text)
        return web.Response(text=str(answer), content_type="application/xml")

    async def kannel_inbound(self, request: web.Request) -> web.Response:
        """A resident's SMS through Kannel (sms-service get-url); our answer is the reply SMS."""
        self.kannel.client.verify(request)
        q = request.query
        number = q.get("from", "")
        if number and not number.startswith("+"):
            number = "+" + number
        text = await self._reply(number, q.get("text", ""), q.get("id", ""), "kannel")
        return web.Response(text=text or "", content_type="text/plain")

    async def _reply(self, number: str, body: str, sid: str, provider: str) -> str | None:
        """Acts on a resident's reply; returns the text to answer with, if any."""
        rid = await self.ctx.registry.by_phone(number)
        if rid is None:
            return None
        profile, target = await self.ctx.redis.hmget(keys.resident(rid), "p", keys.REPLY_TARGET)
        ref = target.decode().split("/") if target else None
        codes = await self._response_codes(ref[0]) if ref else ()
        reply = classify_reply(body, codes)
        language = orjson.loads(profile)["l"][0] if profile else "en"
        if reply.kind in ("ack", "response") and ref:
            aid, _, k, n, leg = ref
            await self.ctx.report(ProviderEvent(aid, rid, int(k), int(n), "acknowledged", provider, ref=sid,
                                                error_code=reply.code or "", channel=self.name, leg=int(leg)))
        elif reply.kind in ("opt_out", "opt_in"):
            await self.ctx.registry.set_non_emergency(rid, reply.kind == "opt_in")
            if ref and reply.kind == "opt_out":
                aid, _, k, n, leg = ref
                await self.ctx.report(ProviderEvent(aid, rid, int(k), int(n), "opted_out", provider,
                                                    channel=self.name, leg=int(leg)))
            return reply_confirmation(reply.kind, language)
        elif reply.kind == "help":
            return reply_confirmation("help", language)
        elif ref:
            await self.ctx.redis.rpush(keys.replies(ref[0]), orjson.dumps(
                {"resident": rid, "body": body[:1000], "sid": sid}))
        return None

    async def _response_codes(self, aid: str) -> list[str]:
        doc = await self.ctx.redis.hget(keys.alert(aid), "doc")
        return [o["code"] for o in orjson.loads(doc).get("response_options", [])] if doc else []

    async def close(self) -> None:
        await self.router.flush()
        await self.twilio.close()
        await self.kannel.close()
