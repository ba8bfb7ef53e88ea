"""A phone call to a simulated resident: ringing, answering, following TwiML.

The call goes queued -> initiated -> ringing -> in-progress -> completed, or
ends busy / no-answer / failed, as the resident's behaviour says. Once
answered, the simulator fetches TwiML from `Url` (signed like a callback),
parses it with defusedxml and plays it out in simulated time: `Say` is heard
(text and language recorded), `Gather` collects the digits the resident
presses and posts them to its `action`, `Redirect` and `Hangup` do what
Twilio does. An answering machine hears everything and presses nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin
from xml.etree.ElementTree import Element, ParseError

import aiohttp
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from simulator.behaviour import understands
from simulator.callbacks import API_VERSION, rfc2822_now

if TYPE_CHECKING:
    from simulator.app import Simulator

MACHINE_DETECTION = frozenset({"Enable", "DetectMessageEnd"})
# Simulated seconds answering machine detection listens before it decides.
DETECTION_S = {"Enable": 3.0, "DetectMessageEnd": 8.0}
SIP_RESPONSE = {"completed": "200", "busy": "486", "no-answer": "487", "failed": "500"}
# A TwiML loop (Redirect to itself) must not keep a simulated call alive forever.
MAX_DOCUMENTS = 50
# Say loop="0" repeats until hang-up; a listener gives up after a few rounds.
ENDLESS_LOOP = 3
PLAY_S = 3.0
DIGIT_S = 0.3


@dataclass(eq=False)
class Call:
    resource: dict[str, Any]
    url: str | None
    method: str
    twiml: str | None
    status_callback: str | None
    callback_method: str
    events: frozenset[str]
    machine_detection: str | None
    timeout_s: float
    behaviour: dict[str, Any]
    entry: dict[str, Any]
    answered_by: str | None = None
    # Simulated seconds since the call was placed, and at answer; durations come
    # from these rather than the wall clock, which time_scale and load distort.
    clock: float = 0.0
    answered_at: float = 0.0
    sequence: int = 0
    presses_used: int = 0
    heard_any: bool = False
    understood: bool = False


def speech_s(text: str) -> float:
    """Roughly how long text-to-speech takes: CJK syllables are slower than letters."""
    return sum(0.15 if ord(ch) >= 0x2E80 else 0.06 for ch in text)


async def _pause(sim: "Simulator", call: Call, seconds: float) -> None:
    call.clock += seconds
    await asyncio.sleep(sim.scaled(seconds))


def place(sim: "Simulator", call: Call) -> None:
    """Dials.  Until someone picks up, the call runs on timers, as an SMS does
    its whole life; only an answered call, which fetches TwiML and waits on
    the gateway, becomes a task.  (Most calls of a mass alert never get that far.)"""
    _after(sim, call, 0.2, _dialled)


def _after(sim: "Simulator", call: Call, seconds: float, step, *args: Any) -> None:
    call.clock += seconds
    sim.later(seconds, step, sim, call, *args)


def _dialled(sim: "Simulator", call: Call) -> None:
    if call.behaviour["voice"]["answer"] == "failed" or sim.faults.chance(sim.faults.get("twilio-voice").fail_rate):
        _end(sim, call, "failed")
        return
    _event(sim, call, "initiated", "initiated")
    _after(sim, call, 1.0, _ringing)


def _ringing(sim: "Simulator", call: Call) -> None:
    answer = call.behaviour["voice"]["answer"]
    ring_s = float(call.behaviour["voice"]["ring_s"])
    _status(call, "ringing")
    _event(sim, call, "ringing", "ringing")
    if answer == "busy":
        _after(sim, call, 2.0, _end, "busy")
    elif answer == "no-answer" or ring_s >= call.timeout_s:
        _after(sim, call, call.timeout_s, _end, "no-answer")
    else:
        _after(sim, call, ring_s, _picked_up)


def _picked_up(sim: "Simulator", call: Call) -> None:
    sim.spawn(_conversation(sim, call))


async def _conversation(sim: "Simulator", call: Call) -> None:
    answer = call.behaviour["voice"]["answer"]
    if call.machine_detection:
        if answer == "machine":
            call.answered_by = "machine_start" if call.machine_detection == "Enable" else "machine_end_beep"
        else:
            call.answered_by = "human"
    call.answered_at = call.clock
    call.resource["start_time"] = rfc2822_now()
    call.resource["answered_by"] = call.answered_by
    call.entry["answered_by"] = call.answered_by or answer
    _status(call, "in-progress")
    _event(sim, call, "answered", "in-progress")
    if call.machine_detection:
        await _pause(sim, call, DETECTION_S[call.machine_detection])

    if call.twiml:
        await _follow(sim, call, call.twiml, call.url or "")
    else:
        document = await _fetch(sim, call, call.url, call.method, {})
        if document is not None:
            await _follow(sim, call, document, call.url)
    _end(sim, call, "completed")


def _status(call: Call, status: str) -> None:
    call.resource["status"] = call.entry["status"] = status
    call.resource["date_updated"] = rfc2822_now()


def _params(call: Call, status: str) -> dict[str, str]:
    """What Twilio says about the call in every webhook for it."""
    r = call.resource
    params = {
        "AccountSid": r["account_sid"],
        "ApiVersion": API_VERSION,
        "CallSid": r["sid"],
        "CallStatus": status,
        "Called": r["to"],
        "Caller": r["from"],
        "Direction": "outbound-api",
        "From": r["from"],
        "To": r["to"],
    }
    if call.answered_by:
        params["AnsweredBy"] = call.answered_by
    return params


def _event(sim: "Simulator", call: Call, event: str, status: str, extra: dict[str, str] | None = None) -> None:
    """A status callback, when the gateway asked for this event."""
    if not call.status_callback or event not in call.events:
        return
    params = _params(call, status)
    params.update(
        CallbackSource="call-progress-events",
        Timestamp=rfc2822_now(),
        SequenceNumber=str(call.sequence),
        **(extra or {}),
    )
    call.sequence += 1
    sim.callbacks.emit(
        "twilio-voice", call.resource["sid"], call.status_callback, params, call.callback_method, final=event == "completed"
    )


def _end(sim: "Simulator", call: Call, status: str) -> None:
    extra = {"SipResponseCode": SIP_RESPONSE[status]}
    if status == "completed":
        seconds = max(1, math.ceil(call.clock - call.answered_at))
        call.resource["duration"] = str(seconds)
        call.resource["end_time"] = rfc2822_now()
        call.entry["duration_s"] = seconds
        # Twilio reports both the talk time and the billed minutes.
        extra.update(CallDuration=str(seconds), Duration=str(math.ceil(seconds / 60)))
    heard = [h for h in call.entry["heard"] if "text" in h]
    if heard:
        call.entry["text"] = " ".join(h["text"] for h in heard)
        call.entry["language"] = heard[0]["language"]
    _status(call, status)
    if status == "completed" and call.heard_any:
        sim.records.receive(call.entry)
    _event(sim, call, "completed", status, extra)
    sim.callbacks.release(call.resource["sid"])


async def _fetch(sim: "Simulator", call: Call, url: str, method: str, extra: dict[str, str]) -> str | None:
    """TwiML from the gateway; a failed fetch ends the call as Twilio's error 11200 does."""
    sim.stats["voice.twiml_fetches"] += 1
    try:
        status, text = await sim.callbacks.request(url, {**_params(call, "in-progress"), **extra}, method)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        status, text = 0, str(exc)
    if 200 <= status < 300:
        return text
    sim.stats["voice.twiml_errors"] += 1
    call.entry["errors"].append({"code": 11200, "url": url, "status": status})
    return None


async def _follow(sim: "Simulator", call: Call, document: str, url: str) -> None:
    for _ in range(MAX_DOCUMENTS):
        try:
            root = fromstring(document)
        except (ParseError, DefusedXmlException):
            root = None
        if root is None or root.tag != "Response":
            sim.stats["voice.twiml_errors"] += 1
            call.entry["errors"].append({"code": 12100, "url": url})
            return
        next_request = await _play(sim, call, root, url)
        if next_request is None:
            return
        url, method, extra = next_request
        document = await _fetch(sim, call, url, method, extra)
        if document is None:
            return
    call.entry["errors"].append({"code": 12100, "url": url, "detail": "too many TwiML documents"})


async def _play(sim: "Simulator", call: Call, root: Element, url: str) -> tuple[str, str, dict[str, str]] | None:
    """Plays one document; returns the next request to make, or None to hang up."""
    for verb in root:
        if verb.tag == "Gather":
            digits = await _gather(sim, call, verb)
            # Twilio calls the action without digits too when asked to (actionOnEmptyResult).
            if digits is not None or verb.get("actionOnEmptyResult", "").lower() == "true":
                action = urljoin(url, verb.get("action") or url)
                return action, verb.get("method", "POST").upper(), {"Digits": digits or "", "FinishedOnKey": ""}
        elif verb.tag == "Redirect":
            return urljoin(url, (verb.text or "").strip()), verb.get("method", "POST").upper(), {}
        elif verb.tag in ("Hangup", "Reject"):
            return None
        else:
            await _listen(sim, call, verb)
    return None


async def _listen(sim: "Simulator", call: Call, verb: Element) -> None:
    """Say, Play and Pause: the resident hears them, the clock runs."""
    loop = int(verb.get("loop", "1") or 1)
    rounds = ENDLESS_LOOP if loop == 0 else loop
    if verb.tag == "Say":
        # itertext() keeps what SSML tags like <prosody> wrap.
        text = " ".join("".join(verb.itertext()).split())
        language = verb.get("language", "en-US")
        call.entry["heard"].append(
            {"text": text, "language": language, "voice": verb.get("voice"), "loop": loop, "at": time.time()}
        )
        call.heard_any = True
        call.understood = call.understood or understands(call.behaviour, language)
        await _pause(sim, call, speech_s(text) * rounds)
    elif verb.tag == "Play":
        call.entry["heard"].append({"play": (verb.text or "").strip(), "loop": loop, "at": time.time()})
        await _pause(sim, call, PLAY_S * rounds)
    elif verb.tag == "Pause":
        await _pause(sim, call, float(verb.get("length", "1")))
    else:
        sim.stats[f"voice.unsupported.{verb.tag}"] += 1


async def _gather(sim: "Simulator", call: Call, verb: Element) -> str | None:
    """The digits the resident presses, or None when they press nothing before the timeout."""
    for child in verb:
        await _listen(sim, call, child)
    voice = call.behaviour["voice"]
    timeout = float(verb.get("timeout", "5"))
    presses = voice["press"]
    can_press = (
        voice["answer"] == "human"
        and "dtmf" in verb.get("input", "dtmf")
        and call.presses_used < len(presses)
        and (call.understood or not call.heard_any)
        and float(voice["after_s"]) <= timeout
    )
    if not can_press:
        await _pause(sim, call, timeout)
        return None
    digits = str(presses[call.presses_used])
    call.presses_used += 1
    if verb.get("numDigits", "").isdigit():
        digits = digits[: int(verb.get("numDigits"))]
    await _pause(sim, call, float(voice["after_s"]) + DIGIT_S * len(digits))
    call.entry["pressed"].append({"digits": digits, "at": time.time()})
    return digits
