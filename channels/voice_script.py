"""What a resident hears on an alert call, and what their keypress means.

TwiML is built with Twilio's own VoiceResponse, so it is always valid and
escaped. The words come from templates/voice/<lang>.txt.j2: the template
renders the message itself and declares the call's other phrases (`prompt`,
`again`, `invalid`, `thanks`, `goodbye`) as `{% set %}` blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from jinja2.environment import TemplateModule
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from channels.base import ACKNOWLEDGED, Message
from channels.notices import notices_for, primary
from channels.sms_text import language_template
from channels.tts_voices import voice_for

ACK_KEY, REPEAT_KEY = "1", "9"
GATHER_TIMEOUT_S = 8
# Between sentences for residents who need slow speech (low_literacy, elderly).
SLOW_BREAK = "1s"
_SENTENCE_END = re.compile(r"\s*\n\s*|(?<=[.!?])\s+|(?<=[。！？])\s*")


def keypad_options(message: Message) -> dict[str, str]:
    """Response options a resident can press: one digit, not taken by acknowledge or repeat."""
    return {
        code: label
        for code, label in message.response_options
        if len(code) == 1 and code.isdigit() and code not in (ACK_KEY, REPEAT_KEY)
    }


@dataclass(frozen=True)
class _Words:
    """The call's words: its own phrases, in `language` (the message's, or
    English where there is no template for it yet), and the message itself."""

    module: TemplateModule
    language: str
    message_language: str

    def __getattr__(self, phrase: str) -> list[tuple[str, str]]:
        if phrase.startswith("_"):
            raise AttributeError(phrase)
        return [(str(getattr(self.module, phrase)), self.language)]

    @property
    def message(self) -> list[tuple[str, str]]:
        """The severity's words, then the message; in one voice where both are in one language."""
        if self.language == self.message_language:
            return [(f"{self.module.intro}\n{self.module}", self.language)]
        return [(str(self.module.intro), self.language), (str(self.module), self.message_language)]


def _words(message: Message) -> _Words:
    template = language_template("voice", message.language)
    module = template.make_module({
        "severity": message.severity,
        "event": message.event,
        "headline": message.headline,
        "body": message.body,
        "instruction": message.instruction,
        "options": sorted(keypad_options(message).items()),
    })
    own = PurePosixPath(template.name).name.split(".")[0]
    return _Words(module, message.language if primary(own) == primary(message.language) else own, message.language)


def _sentences(text: str) -> list[str]:
    # A sentence without a full stop would run into the next one when spoken.
    parts = (part.strip() for part in _SENTENCE_END.split(str(text)))
    return [part if part[-1] in ".!?。！？…" else part + "." for part in parts if part]


def _say(parent: TwiML, texts: list[tuple[str, str]], slow: bool) -> None:
    """Say each (text, language) in that language's voice."""
    for text, in_language in texts:
        # The voice channel speaks only languages with a voice (channels/voice.py);
        # a preview of any other is read in English.
        language, voice = voice_for(in_language) or voice_for("en")
        sentences = _sentences(text)
        if not slow:
            parent.say(" ".join(sentences), language=language, voice=voice)
            continue
        prosody = parent.say(language=language, voice=voice).prosody(rate="slow")
        for i, sentence in enumerate(sentences):
            if i:
                prosody.break_(time=SLOW_BREAK)
            prosody.s(sentence)


def _notices(message: Message) -> list[tuple[str, str]]:
    """"This is a drill" and "not in your language", said before the message in a language there is a voice for."""
    notices = notices_for(message, usable=lambda lang: voice_for(lang) is not None)
    return [("\n".join(notices.sentences()), notices.language)] if notices else []


def _listen(response: VoiceResponse, texts: list[tuple[str, str]], gather_action: str, slow: bool) -> None:
    """Say texts while waiting for one key, which Twilio posts to gather_action."""
    gather = response.gather(num_digits=1, action=gather_action, method="POST", timeout=GATHER_TIMEOUT_S)
    _say(gather, texts, slow)


def alert_twiml(message: Message, *, gather_action: str, slow: bool, repeat_count: int = 0) -> str:
    """The call: the message, the keypress prompt, and one more reading if no key comes.

    repeat_count is how often the message was already played on this call; a
    replay needs no pause for the resident to bring the phone to the ear, and
    says that it repeats.
    """
    words = _words(message)
    response = VoiceResponse()
    if repeat_count:
        _say(response, words.again, slow)
    else:
        response.pause(length=1)
    _say(response, _notices(message) + words.message, slow)
    _listen(response, words.prompt, gather_action, slow)
    # No key pressed: read it once more, still listening, then close.
    _listen(response, words.again + _notices(message) + words.message + words.prompt, gather_action, slow)
    _say(response, words.goodbye, slow)
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
        _say(response, words.invalid, slow)
        _listen(response, words.prompt, gather_action, slow)
        _say(response, words.goodbye, slow)
        response.hangup()
        return str(response), None
    _say(response, words.thanks, slow)
    response.hangup()
    return str(response), meaning


def machine_twiml(message: Message, *, slow: bool) -> str:
    """For an answering machine: leave the message; nobody is there to press a key."""
    words = _words(message)
    response = VoiceResponse()
    _say(response, _notices(message) + words.message + words.goodbye, slow)
    response.hangup()
    return str(response)
