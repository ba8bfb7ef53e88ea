"""Voice calls: for landlines, for people who cannot read a screen.

Confirmed means: `delivered` when a human answered and stayed through the
message to the keypress prompt; `acknowledged` when they pressed 1 (or a
response code).  An answering machine gets the message but never counts:
the call is retried on a schedule, then the plan falls back.  Busy and
no-answer retry with back-off inside the step's budget.
"""

from __future__ import annotations

import datetime
from xml.etree import ElementTree

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from .base import ATTEMPT_PATH, Channel, Outcome, ProviderEvent
from .pacing import Bucket, Pacer, bucket_key
from .twilio import Twilio
from .voice_script import alert_twiml, gather_twiml, machine_twiml

ELDERLY_AGE = 75
# CallStatus -> (attempt status, permanent)
CALL_STATUS = {
    "busy": ("failed", False),
    "no-answer": ("failed", False),
    "canceled": ("failed", False),
    "failed": ("failed", True),
    # Hung up before the prompt: no proof; worth another call.
    "completed": ("failed", False),
}


def speaks_slowly_to(needs: frozenset[str], birth_year: int | None) -> bool:
    if "low_literacy" in needs or "elderly" in needs:
        return True
    return birth_year is not None and datetime.date.today().year - birth_year >= ELDERLY_AGE


class Voice(Channel):
    name = "voice"
    contact_types = frozenset({"phone"})
    handsets = frozenset({"smartphone", "feature_phone", "landline"})
    retry_backoff_s = 60.0

    def __init__(self, ctx):
        super().__init__(ctx)
        settings = ctx.settings
        self.twilio = Twilio(settings)
        # Busy, no answer and machines wait this long, doubling per attempt
        # (engine back-off); the default voice step budget fits three calls.
        self.retry_backoff_s = settings.voice_retry_backoff_s
        self.pacer = Pacer(ctx.redis)
        self.buckets = (Bucket(bucket_key(self.name, "twilio"), settings.voice_cps_per_provider),
                        Bucket(bucket_key(self.name, "twilio", settings.twilio_from_number),
                               settings.voice_cps_per_sender))

    def available(self) -> bool:
        return self.twilio.configured()

    async def send(self, message, recipient) -> Outcome:
        slow = int(speaks_slowly_to(recipient.needs, recipient.birth_year))
        query = f"?lang={message.language}&slow={slow}"
        # Calls per second: carriers and Twilio cap them per caller number and account.
        await self.pacer.wait(*self.buckets)
        return await self.twilio.call(
            recipient.contact["number"],
            url=self.twilio.callback_url(f"/hooks/twilio/voice/{message.ref}{query}"),
            status_callback=self.twilio.callback_url(f"/hooks/twilio/call/{message.ref}"),
        )

    async def preview(self, message, recipient) -> dict:
        slow = speaks_slowly_to(recipient.needs, recipient.birth_year)
        query = f"?lang={message.language}&slow={int(slow)}"
        action = self.twilio.callback_url(f"/hooks/twilio/gather/{message.ref}{query}")
        return {
            "twiml": _report_silence(alert_twiml(message, gather_action=action, slow=slow)),
            # What an answering machine records; the call is tried again later.
            "machine_twiml": machine_twiml(message, slow=slow),
            "slow_speech": slow,
        }

    def routes(self) -> list:
        path = ATTEMPT_PATH
        return [
            web.post(f"/hooks/twilio/voice/{path}", self.answered),
            web.post(f"/hooks/twilio/gather/{path}", self.pressed),
            web.post(f"/hooks/twilio/call/{path}", self.call_status),
        ]

    async def _message(self, request: web.Request):
        m, q = request.match_info, request.query
        msg = await self.ctx.compose(m["aid"], m["rid"], int(m["k"]), int(m["n"]), int(m["leg"]), q.get("lang", "en"))
        return msg, q.get("slow") == "1"

    def _event(self, request: web.Request, status: str, *, permanent=True, code="", sid="") -> ProviderEvent:
        m = request.match_info
        return ProviderEvent(m["aid"], m["rid"], int(m["k"]), int(m["n"]), status, "twilio", ref=sid,
                             error_code=code, permanent=permanent, channel=self.name, leg=int(m["leg"]))

    async def answered(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        message, slow = await self._message(request)
        answered_by = form.get("AnsweredBy", "unknown")
        if answered_by.startswith("machine") or answered_by == "fax":
            await self.ctx.report(self._event(request, "failed", permanent=False, code="machine",
                                              sid=form.get("CallSid", "")))
            return _xml(machine_twiml(message, slow=slow))
        await self.ctx.report(self._event(request, "sent", sid=form.get("CallSid", "")))
        action = self.twilio.callback_url(f"/hooks/twilio/gather/{message.ref}?lang={message.language}&slow={int(slow)}")
        return _xml(_report_silence(alert_twiml(message, gather_action=action, slow=slow)))

    async def pressed(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        message, slow = await self._message(request)
        digits = form.get("Digits", "")
        sid = form.get("CallSid", "")
        action = self.twilio.callback_url(f"/hooks/twilio/gather/{message.ref}?lang={message.language}&slow={int(slow)}")
        # They stayed to the prompt: the message reached a person.
        await self.ctx.report(self._event(request, "delivered", sid=sid))
        if not digits:
            return _xml(str(VoiceResponse().hangup()))
        twiml, meaning = gather_twiml(message, digits, gather_action=action, slow=slow)
        if meaning and (meaning == "acknowledged" or meaning.startswith("response:")):
            code = meaning.split(":", 1)[1] if ":" in meaning else "1"
            await self.ctx.report(self._event(request, "acknowledged", code=code, sid=sid))
            return _xml(twiml)
        return _xml(_report_silence(twiml))

    async def call_status(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        mapped = CALL_STATUS.get(form.get("CallStatus", ""))
        if mapped:
            status, permanent = mapped
            await self.ctx.report(self._event(request, status, permanent=permanent,
                                              code=form.get("CallStatus", ""), sid=form.get("CallSid", "")))
        return web.Response(status=204)


def _report_silence(twiml: str) -> str:
    """Ask Twilio to call the last Gather's action even without a keypress, so
    a resident who listened to the end (and the repeat) but pressed nothing
    still counts as reached."""
    root = ElementTree.fromstring(twiml)
    gathers = list(root.iter("Gather"))
    if gathers:
        gathers[-1].set("actionOnEmptyResult", "true")
    return '<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(root, encoding="unicode")


def _xml(twiml: str) -> web.Response:
    return web.Response(text=twiml, content_type="application/xml")
