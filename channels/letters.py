"""Letters on paper: jinja2 HTML, rendered to PDF by WeasyPrint.

One template (`templates/mail/letter.html.j2`) with the words of each
language beside it (`templates/mail/<lang>.json`), and three ways to lay it
out, chosen by the resident's needs:

- standard: A4, the address in the window of a DL envelope;
- large print (`low_vision`, `large_print`): no text under 18 pt;
- easy read (`low_literacy`): one sentence a line, what to do as numbered
  steps, a big QR code.

Every letter carries a QR code to the web version (Message.page_url), where
the resident can read it again and press "I got this".  The PDF is PDF/UA-1:
tagged in reading order, with the letter's language and title and the QR
code described in words, so a screen reader can read it aloud.  Fonts are found by
family name through fontconfig: Korean, Chinese and Japanese need Debian's
`fonts-noto-cjk`. Without a named font for the letter's language (and for
Korean, which every address here is in), `render` raises `MissingFont`
rather than print whatever stand-in fontconfig offers, which may lack the
glyphs and leave a large-print letter small or blank.

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


class MissingFont(RuntimeError):
    """No font the letter names for a language is installed."""


@functools.cache
def installed(family: str) -> bool:
    """Whether fontconfig, WeasyPrint's font finder, has this family itself
    (it matches every name to some font; a stand-in does not count)."""
    from weasyprint.text.ffi import ffi, fontconfig as fc

    config = fc.FcInitLoadConfigAndFonts()
    pattern = fc.FcPatternCreate()
    try:
        fc.FcPatternAddString(pattern, b"family", family.encode())
        fc.FcConfigSubstitute(config, pattern, fc.FcMatchPattern)
        fc.FcDefaultSubstitute(pattern)
        match = fc.FcFontMatch(config, pattern, ffi.new("FcResult *"))
        if match == ffi.NULL:
            return False
        name = ffi.new("FcChar8 **")
        found = fc.FcPatternGetString(match, b"family", 0, name) == fc.FcResultMatch \
            and ffi.string(name[0]).decode().casefold() == family.casefold()
        fc.FcPatternDestroy(match)
        return found
    finally:
        fc.FcPatternDestroy(pattern)
        fc.FcConfigDestroy(config)


def font_problem(language: str) -> str | None:
    """Why letters in `language` cannot be printed as laid out, or None."""
    for lang in dict.fromkeys([language, "ko"]):
        families = re.findall(r'"([^"]+)"', strings(lang)["font"])
        if not any(installed(f) for f in families):
            return (f"no font for {lang} letters: none of {', '.join(families)} is installed "
                    "(Debian: apt install fonts-noto-cjk)")
    return None


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
    """The letter as a PDF. CPU-bound (~0.1-0.3 s): call it in a thread.
    Raises MissingFont when its language's fonts are not installed."""
    import weasyprint
    from weasyprint.urls import URLFetcher

    problem = font_problem(message.language)
    if problem:
        raise MissingFont(problem)
    source = html(message, address, layout, **kwargs)
    fetcher = URLFetcher(allowed_protocols={"data"})
    with _RENDER:
        document = weasyprint.HTML(string=source, base_url=str(TEMPLATES_DIR / "mail"), url_fetcher=fetcher).render()
        # PDF/UA-1: tagged, in reading order, with its language and title, for
        # residents who have the letter read to them from a scan or an e-mail.
        pdf = document.write_pdf(pdf_variant="pdf/ua-1")
    return Letter(pdf, len(document.pages), layout.name)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]


def _date(day: datetime.date, words: dict) -> str:
    return words["date"].format(y=day.year, m=day.month, d=day.day, month=words["months"][day.month - 1])

