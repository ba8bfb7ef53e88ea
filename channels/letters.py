"""Letters on paper: jinja2 HTML, rendered to PDF by WeasyPrint.

One template (`templates/mail/letter.html.j2`) with the words of each
language beside it (`templates/mail/<lang>.json`), and three ways to lay it
out, chosen by the resident's needs:

- standard: A4, the address in the window of a DL envelope;
- large print (`low_vision`, `large_print`): no text under 18 pt;
- easy read (`low_literacy`): one sentence a line, what to do as numbered
  steps, a big QR code.

Every letter carries a QR code to the web version (Message.page_url), where
the resident can read it again and press "I got this".  Fonts are found by
family name through fontconfig: Korean, Chinese and Japanese need Debian's
`fonts-noto-cjk`.

The renderer fetches nothing: only `data:` URLs (the QR code) are allowed,
so no text an agency wrote can make it read a file or call a server.
"""

from __future__ import annotations

import datetime
import functools
import re
import threading
from dataclasses import dataclass

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway.config import TEMPLATES_DIR

from .base import Message
from .notices import notices_for

LARGE_PRINT_NEEDS = frozenset({"low_vision", "large_print"})
EASY_READ_NEEDS = frozenset({"low_literacy"})
# Sentence ends in the scripts the city's residents read.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")

_TEMPLATES = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# WeasyPrint shares font caches between renders; one render at a time per process.
_RENDER = threading.Lock()


@dataclass(frozen=True)
class Layout:
    large_print: bool = False
    easy_read: bool = False

    @classmethod
    def for_needs(cls, needs: frozenset[str] | set[str]) -> "Layout":
        return cls(large_print=bool(LARGE_PRINT_NEEDS & set(needs)), easy_read=bool(EASY_READ_NEEDS & set(needs)))

    @property
    def name(self) -> str:
        return "+".join(n for n, on in (("large_print", self.large_print), ("easy_read", self.easy_read)) if on) \
            or "standard"


@dataclass(frozen=True)
class Letter:
    pdf: bytes
    pages: int
    layout: str


@dataclass(frozen=True)
class Address:
    name: str
    lines: tuple[str, ...]
    postcode: str
    country: str = "KR"

    @classmethod
    def of(cls, name: str, contact: dict) -> "Address":
        return cls(name, tuple(contact.get("lines", ())), contact.get("postcode", ""), contact.get("country", "KR"))


@functools.cache
def strings(language: str) -> dict:
    """The letter's words in a BCP 47 language: `ko-KR`, then `ko`, then English."""
    tag = language.strip().replace("_", "-").lower()
    for lang in dict.fromkeys([tag, tag.split("-")[0], "en"]):
        path = TEMPLATES_DIR / "mail" / f"{lang}.json"
        if path.is_file():
            return orjson.loads(path.read_bytes())
    raise FileNotFoundError("templates/mail/en.json")


def html(message: Message, address: Address, layout: Layout, *, reference: str = "", return_address: str = "",
         today: datetime.date | None = None) -> str:
    """The letter as HTML, ready for WeasyPrint."""
    import segno

    words = strings(message.language)
    qr = segno.make(message.page_url, error="m").svg_data_uri(scale=4, border=0) if message.page_url else ""
    return _TEMPLATES.get_template("mail/letter.html.j2").render(
        m=message, to=address, layout=layout, w=words, qr=qr, reference=reference, notices=notices_for(message),
        return_address=return_address or words["sender"], date=_date(today or datetime.date.today(), words),
        word=words["severity"].get(message.severity, words["severity"]["default"]),
        sentences=sentences(message.short or message.body) if layout.easy_read else [],
        steps=sentences(message.instruction) if layout.easy_read else [],
    )


def render(message: Message, address: Address, layout: Layout, **kwargs) -> Letter:
    """The letter as a PDF. CPU-bound (~0.1-0.3 s): call it in a thread."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    source = html(message, address, layout, **kwargs)
    fetcher = URLFetcher(allowed_protocols={"data"})
    with _RENDER:
        document = weasyprint.HTML(string=source, base_url=str(TEMPLATES_DIR / "mail"), url_fetcher=fetcher).render()
        pdf = document.write_pdf()
    return Letter(pdf, len(document.pages), layout.name)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]


def _date(day: datetime.date, words: dict) -> str:
    return words["date"].format(y=day.year, m=day.month, d=day.day, month=words["months"][day.month - 1])

