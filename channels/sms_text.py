"""What a resident reads in an SMS, sized for 2G/3G feature phones.

One character outside the GSM 03.38 alphabet (any Korean syllable, an emoji, a
curly quote) switches the whole SMS from GSM-7 (160 characters) to UCS-2 (70).
Handsets reassemble and carriers bill per segment, so a message is rendered to
a segment budget and falls back to the easy-read short form instead of being
cut off by the network in mid-sentence.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Callable

import gsm0338  # noqa: F401  registers the "gsm03.38" codec, our source of the standard table
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from channels.base import Message
from channels.notices import notices_for
from gateway.config import TEMPLATES_DIR

GSM7, UCS2 = "GSM-7", "UCS-2"
SMARTPHONE, FEATURE_PHONE = "smartphone", "feature_phone"
# (units in a single SMS, units per part of a concatenated one): the header that
# chains the parts takes 7 septets, or 3 UCS-2 units, out of every part.
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}
# A cut at a word boundary may give back at most this many characters; past
# that (e.g. Chinese, Japanese without spaces) the cut falls between characters.
_WORD_BACKOFF = 20

TEMPLATES = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    # Plain text: SMS and speech. TwiML escaping is VoiceResponse's job.
    autoescape=False,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def language_template(folder: str, language: str, name: str = "{lang}.txt.j2") -> Template:
    """The template for a BCP 47 language tag: `ko-KR`, then `ko`, then English."""
    tag = language.strip().replace("_", "-").lower()
    langs = dict.fromkeys([tag, tag.split("-")[0], "en"])
    return TEMPLATES.select_template([f"{folder}/{name.format(lang=lang)}" for lang in langs])


def _gsm_septets() -> dict[str, int]:
    """Septets per character: 1 in the default alphabet, 2 behind the escape."""
    table = {}
    for code in range(128):
        if code == 0x1B:  # the escape itself is no character
            continue
        table[bytes([code]).decode("gsm03.38")] = 1
        try:
            table[bytes([0x1B, code]).decode("gsm03.38")] = 2
        except UnicodeDecodeError:
            pass
    return table


_SEPTETS = _gsm_septets()
# Text of one-septet GSM-7 characters only, as a page link is: checked per message, so in C.
_ONE_SEPTET_EACH = re.compile("[" + "".join(re.escape(ch) for ch, n in _SEPTETS.items() if n == 1) + "]*")

# Typography that word processors put into agency text; plain equivalents keep
# an English message in GSM-7 and so at 160 characters a segment, not 70.
_PLAIN = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2026": "...",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
})


@dataclass(frozen=True)
class SmsEncoding:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


@dataclass(frozen=True)
class RenderedSms:
    text: str
    encoding: str
    segments: int
    used_short_form: bool
    link_included: bool


def _costs(text: str) -> tuple[str, list[int]]:
    if all(ch in _SEPTETS for ch in text):
        return GSM7, [_SEPTETS[ch] for ch in text]
    # Characters beyond the BMP (emoji) are a surrogate pair: two UCS-2 units.
    return UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def encode_info(text: str) -> SmsEncoding:
    encoding, costs = _costs(text)
    units = sum(costs)
    single, per_part = _LIMITS[encoding]
    if units <= single:
        return SmsEncoding(encoding, units, 1)
    # A GSM escape or a surrogate pair is never split over two parts: a
    # character that does not fit whole moves to the next part.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            segments, used = segments + 1, 0
        used += cost
    return SmsEncoding(encoding, units, segments)


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    plain = text.translate(_PLAIN)
    return plain if _costs(plain)[0] == GSM7 else text


def _fits(text: str, budget: int) -> bool:
    return encode_info(text).segments <= budget


def _head(text: str, n: int) -> str:
    """At most the first n characters of text, ended at a word if one is near."""
    head = text[:n]
    space = max(head.rfind(" "), head.rfind("\n"))
    if n < len(text) and not text[n].isspace() and space > 0 and n - space <= _WORD_BACKOFF:
        head = head[:space]
    # Python strings index code points, so a surrogate pair or an escaped GSM
    # character is never split here; encode_info keeps them whole across parts.
    return head.rstrip(" \n,;:-")


def _fit(render: Callable[[str], str], text: str, budget: int) -> str | None:
    """The longest render(cut of text) within budget, or None if no word of it fits."""
    whole = render(text)
    if _fits(whole, budget):
        return whole
    best, low, high = None, 1, len(text) - 1
    while low <= high:
        mid = (low + high) // 2
        head = _head(text, mid)
        candidate = render(head + "...")
        if encode_info(candidate).encoding == UCS2:
            candidate = render(head + "\u2026")  # one UCS-2 unit where "..." is three
        if head and _fits(candidate, budget):
            best, low = candidate, mid + 1
        else:
            high = mid - 1
    return best


def _lines(text: str) -> str:
    """Templates stay readable; blank lines and stray spaces would cost units."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def render_sms(
    message: Message, *, handset: str, segment_budget: int, with_link: bool | None = None
) -> RenderedSms:
    """The SMS for one resident; the same for every resident who shares the
    message's language and handset, so it is rendered once per alert and the
    page link (always of one length) put in afterwards."""
    link = message.page_url
    if link and not _ONE_SEPTET_EACH.fullmatch(link):
        return _render_sms(message, handset=handset, segment_budget=segment_budget, with_link=with_link)
    # One septet in GSM-7 and one unit in UCS-2, like each character of a plain URL.
    placeholder = "§" * len(link)
    # The notices follow from the language, the drill and the reader's languages.
    key = (message.language, message.event, message.severity, message.headline, message.body,
           message.instruction, message.short, message.response_options, placeholder, handset,
           segment_budget, with_link, message.drill, message.reader_languages)
    shared = _rendered.get(key)
    if shared is None:
        shared = _render_sms(replace(message, page_url=placeholder), handset=handset,
                             segment_budget=segment_budget, with_link=with_link)
        if len(_rendered) >= _RENDERED_MAX:
            _rendered.clear()
        _rendered[key] = shared
    if not shared.link_included:
        return shared
    return RenderedSms(shared.text.replace(placeholder, link), shared.encoding, shared.segments,
                       shared.used_short_form, True)


# Rendered texts by everything they depend on; a fan-out needs a handful.
_rendered: dict[tuple, RenderedSms] = {}
_RENDERED_MAX = 1024


def _render_sms(
    message: Message, *, handset: str, segment_budget: int, with_link: bool | None = None
) -> RenderedSms:
    if handset not in (SMARTPHONE, FEATURE_PHONE):
        raise ValueError(f"no SMS for handset {handset!r}")
    if segment_budget < 1:
        raise ValueError("segment_budget must be at least 1")
    # A feature phone cannot open a web page; the caller may know better (with_link).
    wants_link = handset == SMARTPHONE if with_link is None else with_link
    link = message.page_url if wants_link else ""
    template = language_template("sms", message.language)
    fields = {
        "severity": message.severity,
        "headline": _plain(message.headline),
        "body": _plain(message.body),
        "instruction": _plain(message.instruction),
    }
    # "1" is the acknowledgement the template always asks for.
    options = [(code, _plain(label)) for code, label in message.response_options if code != "1"]
    # "This is a drill" and "not in your language" come first, in the short form too.
    first = "\n".join(notices_for(message).lines())

    def render(summary: str = "", link: str = link, options: list = options) -> str:
        return _lines(first + "\n" + template.render(fields, summary=summary, link=link, options=options))

    def done(text: str, short: bool, link: str) -> RenderedSms:
        info = encode_info(text)
        return RenderedSms(text, info.encoding, info.segments, short, bool(link))

    full = render()
    if _fits(full, segment_budget):
        return done(full, False, link)
    # The easy-read short form: the agency's own, or headline and what to do.
    summary = _plain(message.short) or f"{fields['headline']}\n{fields['instruction']}".strip()
    # When not even a word of the summary fits, the link goes first, then the
    # response options; the request to reply 1 stays to the last.
    frames = [(link, options), ("", options), ("", [])]
    for page, offered in frames[0 if link else 1 :]:
        text = _fit(lambda cut: render(cut, page, offered), summary, segment_budget)
        if text is not None:
            return done(text, True, page)
    # A budget too small even for the frame: cut the whole short text.
    text = _fit(lambda cut: cut, render(summary, "", []), segment_budget)
    assert text is not None  # one segment always holds a character and an ellipsis
    return done(text, True, "")
