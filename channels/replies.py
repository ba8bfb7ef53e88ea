"""What a resident's SMS reply means, and what we text back.

Residents answer the way they talk ("네", "ok!", "１" from a full-width
keyboard), so replies are normalised before they are matched. Opt-out words
win over everything else: a resident who asks to stop must never be counted
as an answer instead.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable

from channels.sms_text import language_template

ACK, RESPONSE, OPT_OUT, OPT_IN, HELP, FREE_TEXT = "ack", "response", "opt_out", "opt_in", "help", "free_text"
_KINDS = (ACK, RESPONSE, OPT_OUT, OPT_IN, HELP, FREE_TEXT)

# Matched against the whole reply, after normalising; the SMS asks for "1",
# the rest is what people send instead.
_KEYWORDS = {
    OPT_OUT: {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "중지", "거부", "수신거부"},
    OPT_IN: {"start", "unstop", "시작"},
    HELP: {"help", "info", "도움", "도움말"},
    ACK: {
        "1", "yes", "y", "ok", "okay",
        "네", "예", "응", "확인", "받았습니다", "받았어요", "확인했습니다",
        "收到", "好", "はい", "了解", "có", "vâng", "đã nhận",
    },
}


@dataclass(frozen=True)
class Reply:
    kind: str  # ack | response | opt_out | opt_in | help | free_text
    # The response option the resident chose; only for kind "response".
    code: str | None = None


def _normalise(text: str) -> str:
    """Full-width to ASCII, one case, no punctuation, emoji marks or spaces around."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = [i for i, ch in enumerate(text) if unicodedata.category(ch)[0] not in "PSZCM"]
    return " ".join(text[kept[0] : kept[-1] + 1].split()) if kept else ""


def classify_reply(body: str, response_codes: Iterable[str] = ()) -> Reply:
    said = _normalise(body)
    # "수신 거부" and "stop all" mean what "수신거부" and "stopall" do.
    forms = {said, said.replace(" ", "")}
    for kind in (OPT_OUT, OPT_IN, HELP):
        if forms & _KEYWORDS[kind]:
            return Reply(kind)
    codes = {_normalise(code): code for code in response_codes}
    if said in codes and codes[said] != "1":
        return Reply(RESPONSE, codes[said])
    if said in codes or forms & _KEYWORDS[ACK]:
        return Reply(ACK)
    return Reply(FREE_TEXT)


def reply_confirmation(kind: str, language: str) -> str:
    """The text answering a reply of this kind, in the resident's language."""
    if kind not in _KINDS:
        raise ValueError(f"unknown reply kind {kind!r}")
    texts = language_template("sms", language, "replies_{lang}.j2").make_module()
    return " ".join(str(getattr(texts, kind)).split())
