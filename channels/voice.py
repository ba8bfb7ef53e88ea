"""Voice calls: for landlines, for people who cannot read a screen.

Confirmed means: `delivered` when a human answered and stayed through the
message to the keypress prompt; `acknowledged` when they pressed 1 (or a
response code).  An answering machine gets the message but never counts:
the call is retried on a schedule, then the plan falls back.  Busy and
no-answer retry with back-off inside the step's budget.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import replace
from xml.etree import ElementTree

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from gateway import keys

from .base import ATTEMPT_PATH, Channel, Outcome, ProviderEvent
from .pacing import Bucket, Pacer
from .tts_voices import voice_for
from .twilio import Twilio
from .voice_script import alert_twiml, gather_twiml, machine_twiml

ELDERLY_AGE = 75
# The attempt's error code when the message cannot be made into TwiML: the
# step fails for good and the plan moves on to the next channel.
UNRENDERABLE = "unrenderable"
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
    # An answered call plays its message twice, slowly for some, then waits for a
    # key: a step's deadline in the middle would end it unreachable though they listen.
    hold_while_sent_s = 120.0

    def __init__(self, ctx):
        super().__init__(ctx)
        settings = ctx.settings
        self.twilio = Twilio(settings)
        # Busy, no answer and machines wait this long, doubling per attempt
        # (engine back-off); the default voice step budget fits three calls.
        self.retry_backoff_s = settings.voice_retry_backoff_s
        self.pacer = Pacer(ctx.redis)
        self.buckets = (Bucket(keys.pace_bucket(self.name, "twilio"), settings.voice_cps_per_provider),
                        Bucket(keys.pace_bucket(self.name, "twilio", settings.twilio_from_number),
                               settings.voice_cps_per_sender))

    def available(self) -> bool:
        return self.twilio.configured()

    def speaks(self, language: str) -> bool:
        return voice_for(language) is not None

    async def send(self, message, recipient) -> Outcome:
        slow = int(speaks_slowly_to(recipient.needs, recipient.birth_year))
        query = f"?lang={message.language}&slow={slow}"
        # Known before anyone's phone rings: a call that could only hang up is no call.
        problem = _unspeakable(_script_of(message), bool(slow))
        if problem:
            return Outcome("failed", "twilio", error_code=UNRENDERABLE, detail=problem)
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

    def _event(self, request: web.Request, status: str, *, permanent=True, code="", sid="",
               detail="") -> ProviderEvent:
        m = request.match_info
        return ProviderEvent(m["aid"], m["rid"], int(m["k"]), int(m["n"]), status, "twilio", ref=sid,
                             error_code=code, permanent=permanent, channel=self.name, leg=int(m["leg"]),
                             detail=detail)

    async def _speak(self, request: web.Request, sid: str, render) -> web.Response | None:
        """The TwiML `render` makes; None, after failing the attempt for good with
        the reason, when it cannot be made (Twilio then gets a hang-up, not a 500)."""
        twiml, problem = _rendered(render)
        if problem is None:
            return _xml(twiml)
        await self.ctx.report(self._event(request, "failed", code=UNRENDERABLE, sid=sid, detail=problem))
        return None

    async def answered(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        message, slow = await self._message(request)
        answered_by = form.get("AnsweredBy", "unknown")
        if answered_by.startswith("machine") or answered_by == "fax":
            await self.ctx.report(self._event(request, "failed", permanent=False, code="machine",
                                              sid=form.get("CallSid", "")))
            return _xml(machine_twiml(message, slow=slow))
        action = self.twilio.callback_url(f"/hooks/twilio/gather/{message.ref}?lang={message.language}&slow={int(slow)}")
        spoken = await self._speak(request, form.get("CallSid", ""),
                                   lambda: _report_silence(alert_twiml(message, gather_action=action, slow=slow)))
        if spoken is None:
            return _hang_up()
        await self.ctx.report(self._event(request, "sent", sid=form.get("CallSid", "")))
        return spoken

    async def pressed(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        message, slow = await self._message(request)
        digits = form.get("Digits", "")
        sid = form.get("CallSid", "")
        action = self.twilio.callback_url(f"/hooks/twilio/gather/{message.ref}?lang={message.language}&slow={int(slow)}")
        # They stayed to the prompt: the message reached a person.
        await self.ctx.report(self._event(request, "delivered", sid=sid))
        if not digits:
            return _hang_up()
        twiml, meaning = gather_twiml(message, digits, gather_action=action, slow=slow)
        if meaning and (meaning == "acknowledged" or meaning.startswith("response:")):
            code = meaning.split(":", 1)[1] if ":" in meaning else "1"
            await self.ctx.report(self._event(request, "acknowledged", code=code, sid=sid))
            return _xml(twiml)
        return await self._speak(request, sid, lambda: _report_silence(twiml)) or _hang_up()

    async def call_status(self, request: web.Request) -> web.Response:
        form = await self.twilio.verified_form(request)
        mapped = CALL_STATUS.get(form.get("CallStatus", ""))
        if mapped:
            status, permanent = mapped
            await self.ctx.report(self._event(request, status, permanent=permanent,
                                              code=form.get("CallStatus", ""), sid=form.get("CallSid", "")))
        return web.Response(status=204)

    async def look_up(self, provider: str, ref: str) -> Outcome | None:
        # A call that ended busy, unanswered or failed; `completed` proves nothing
        # by itself (the prompt's webhook does), so it is recorded as the callback would.
        call_status = await self.twilio.call_status(ref) if provider == "twilio" else None
        mapped = CALL_STATUS.get(call_status or "")
        if mapped is None:
            return None
        status, permanent = mapped
        return Outcome(status, "twilio", ref=ref, error_code=call_status, permanent=permanent)


def _report_silence(twiml: str) -> str:
    """Ask Twilio to call the last Gather's action even without a keypress, so
    a resident who listened to the end (and the repeat) but pressed nothing
    still counts as reached."""
    root = ElementTree.fromstring(twiml)
    gathers = list(root.iter("Gather"))
    if gathers:
        gathers[-1].set("actionOnEmptyResult", "true")
    return '<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(root, encoding="unicode")


def _rendered(render) -> tuple[str, str | None]:
    """(the TwiML `render` makes, None), or ("", why) when it is not XML that
    parses: text XML cannot carry, kept out at the API, must still end no call in a 500."""
    try:
        twiml = render()
        ElementTree.fromstring(twiml.encode())
    except (ElementTree.ParseError, ValueError) as e:
        return "", f"the message cannot be spoken: {e}"[:200]
    return twiml, None


def _script_of(message):
    """The message with only what the call script reads (voice_script.py): one
    script, and one check of it, serves every resident of an alert."""
    return replace(message, alert_id="", resident_id="", step=0, attempt=0, link="", short="", page_url="",
                   expires_at=None, leg=0)


@functools.lru_cache(maxsize=256)
def _unspeakable(script, slow: bool) -> str | None:
    return _rendered(lambda: alert_twiml(script, gather_action="", slow=slow))[1]


def _hang_up() -> web.Response:
    response = VoiceResponse()
    response.hangup()  # returns the <Hangup/> alone, which is no TwiML document
    return _xml(str(response))


def _xml(twiml: str) -> web.Response:
    return web.Response(text=twiml, content_type="application/xml")
