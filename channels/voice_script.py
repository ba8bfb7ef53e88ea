"""What a resident hears on an alert call, and what their keypress means.

TwiML is built with Twilio's own VoiceResponse, so it is always valid and
escaped. The words come from templates/voice/<lang>.txt.j2: the template
renders the message itself and declares the call's other phrases (`prompt`,
`again`, `invalid`, `thanks`, `goodbye`) as `{% set %}` blocks.
"""

from __future__ import annotations

import re

from jinja2.environment import TemplateModule
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from channels.base import ACKNOWLEDGED, Message
from channels.sms_text import language_template

# Twilio <Say> language and voice per language. Google voices throughout:
# Twilio offers no Polly voice for Vietnamese, and Google's accept the SSML
# used for slow speech in every language here.
VOICES = {
    "ko": ("ko-KR", "Google.ko-KR-Standard-A"),
    "en": ("en-US", "Google.en-US-Standard-C"),
    # Twilio names Mandarin by its ISO 639-3 code.
    "zh": ("cmn-CN", "Google.cmn-CN-Standard-A"),
    "vi": ("vi-VN", "Google.vi-VN-Standard-A"),
    "ja": ("ja-JP", "Google.ja-JP-Standard-B"),
}
ACK_KEY, REPEAT_KEY = "1", "9"
GATHER_TIMEOUT_S = 8
# Between sentences for residents who need slow speech (low_literacy, elderly).
SLOW_BREAK = "1s"
_SENTENCE_END = re.compile(r"\s*\n\s*|(?<=[.!?])\s+|(?<=[。！？])\s*")


def voice_for(language: str) -> tuple[str, str]:
    primary = language.strip().replace("_", "-").lower().split("-")[0]
    return VOICES.get(primary, VOICES["en"])


def keypad_options(message: Message) -> dict[str, str]:
    """Response options a resident can press: one digit, not taken by acknowledge or repeat."""
    return {
        code: label
        for code, label in message.response_options
        if len(code) == 1 and code.isdigit() and code not in (ACK_KEY, REPEAT_KEY)
    }


def _words(message: Message) -> TemplateModule:
    return language_template("voice", message.language).make_module({
        "severity": message.severity,
        "event": message.event,
        "headline": message.headline,
        "body": message.body,
        "instruction": message.instruction,
        "options": sorted(keypad_options(message).items()),
    })


def _sentences(text: str) -> list[str]:
    # A sentence without a full stop would run into the next one when spoken.
    parts = (part.strip() for part in _SENTENCE_END.split(str(text)))
    return [part if part[-1] in ".!?。！？…" else part + "." for part in parts if part]


def _say(parent: TwiML, text: str, message: Message, slow: bool) -> None:
    language, voice = voice_for(message.language)
    sentences = _sentences(text)
    if not slow:
        parent.say(" ".join(sentences), language=language, voice=voice)
        return
    prosody = parent.say(language=language, voice=voice).prosody(rate="slow")
    for i, sentence in enumerate(sentences):
        if i:
            prosody.break_(time=SLOW_BREAK)
        prosody.s(sentence)


def _listen(response: VoiceResponse, texts: list[str], message: Message, gather_action: str, slow: bool) -> None:
    """Say texts while waiting for one key, which Twilio posts to gather_action."""
    gather = response.gather(num_digits=1, action=gather_action, method="POST", timeout=GATHER_TIMEOUT_S)
    for text in texts:
        _say(gather, text, message, slow)


def alert_twiml(message: Message, *, gather_action: str, slow: bool, repeat_count: int = 0) -> str:
    """The call: the message, the keypress prompt, and one more reading if no key comes.

    repeat_count is how often the message was already played on this call; a
    replay needs no pause for the resident to bring the phone to the ear, and
    says that it repeats.
    """
    words = _words(message)
    response = VoiceResponse()
    if repeat_count:
        _say(response, words.again, message, slow)
    else:
        response.pause(length=1)
    _say(response, str(words), message, slow)
    _listen(response, [words.prompt], message, gather_action, slow)
    # No key pressed: read it once more, still listening, then close.
    _listen(response, [words.again, str(words), words.prompt], message, gather_action, slow)
    _say(response, words.goodbye, message, slow)
    response.hangup()
    return str(response)


def gather_twiml(message: Message, digits: str, *, gather_action: str, slow: bool) -> tuple[str, str | None]:
    """The answer to a keypress, and what it means: "acknowledged", "response:<code>" or None."""
    key = digits.strip()
    if key == REPEAT_KEY:
        return alert_twiml(message, gather_action=gather_action, slow=slow, repeat_count=1), None
    words = _words(message)
    response = VoiceResponse()
    if key == ACK_KEY:
        meaning = ACKNOWLEDGED
    elif key in keypad_options(message):
        meaning = f"response:{key}"
    else:
        _say(response, words.invalid, message, slow)
        _listen(response, [words.prompt], message, gather_action, slow)
        _say(response, words.goodbye, message, slow)
        response.hangup()
        return str(response), None
    _say(response, words.thanks, message, slow)
    response.hangup()
    return str(response), meaning


def machine_twiml(message: Message, *, slow: bool) -> str:
    """For an answering machine: leave the message; nobody is there to press a key."""
    words = _words(message)
    response = VoiceResponse()
    _say(response, str(words), message, slow)
    _say(response, words.goodbye, message, slow)
    response.hangup()
    return str(response)
