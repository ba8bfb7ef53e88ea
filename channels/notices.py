"""What a resident is told before the message itself, on every channel.

- A drill (CAP status Test or Exercise) says so first, unmistakably: "[DRILL]
  This is a drill, not a real emergency."
- A resident who reads none of the alert's languages gets it in the fallback
  language, told that it is not available in theirs.

Both are said in the resident's own language when there are words for it
(templates/notices/<lang>.json; adding a language is adding a file), and in
the message's language otherwise.  The same files hold the words of the
gateway's own "is this still your number?" campaign (gateway/reverify.py).  A channel that cannot use a language (no
TTS voice for it) says so through `usable`, and gets the message's language.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import orjson

from gateway.config import TEMPLATES_DIR

from .base import Message

NOTICES_DIR = TEMPLATES_DIR / "notices"
_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def primary(language: str) -> str:
    return language.strip().replace("_", "-").lower().split("-")[0]


@functools.cache
def words_for(language: str) -> dict | None:
    """The notices of a BCP 47 tag (`zh-TW`, then `zh`), or None when there are none."""
    tag = language.strip().replace("_", "-").lower()
    if not _TAG.match(tag):
        return None
    for name in dict.fromkeys([tag, primary(tag)]):
        path = NOTICES_DIR / f"{name}.json"
        if path.is_file():
            return orjson.loads(path.read_bytes())
    return None


def languages() -> list[str]:
    """Languages the notices are written in."""
    return sorted(p.stem for p in NOTICES_DIR.glob("*.json"))


@dataclass(frozen=True)
class Notices:
    language: str
    drill: str = ""
    drill_tag: str = ""
    not_in_language: str = ""

    def lines(self) -> list[str]:
        """As text: each notice a line, the drill first."""
        return [line for line in (f"[{self.drill_tag}] {self.drill}" if self.drill else "", self.not_in_language)
                if line]

    def sentences(self) -> list[str]:
        """As speech: no bracketed tag to read out."""
        return [s for s in (self.drill, self.not_in_language) if s]

    def __bool__(self) -> bool:
        return bool(self.drill or self.not_in_language)


def reads(language: str, readers: Sequence[str]) -> bool:
    """Whether a resident reads `language` (one whose languages are unknown is taken to)."""
    return not readers or any(primary(lang) == primary(language) for lang in readers)


def notices(language: str, drill: str, readers: Sequence[str], usable: Callable[[str], bool] = lambda lang: True
            ) -> Notices:
    """What to say before a message in `language` (CAP status `drill`, or "") to a resident who reads `readers`."""
    lacking = not reads(language, readers)
    if not drill and not lacking:
        return Notices(language)
    words = words_for(language) or words_for("en")
    if lacking:
        for lang in readers:
            own = words_for(lang)
            if own is not None and usable(lang):
                language, words = lang, own
                break
    return Notices(language, words["drill"] if drill else "", words["drill_tag"] if drill else "",
                   words["not_in_language"] if lacking else "")


def notices_for(message: Message, usable: Callable[[str], bool] = lambda lang: True) -> Notices:
    return notices(message.language, message.drill, message.reader_languages, usable)
