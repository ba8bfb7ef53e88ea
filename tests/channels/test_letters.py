"""Letters as residents hold them: Korean text, large print, easy read, a QR code home."""

from __future__ import annotations

import datetime
import io
import shutil
import subprocess

import pdfplumber
import pytest

from channels.base import Message
from channels.letters import Address, Layout, html, render, sentences
from tests.letter_fonts import needs_letter_fonts

pytestmark = [pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)"),
              needs_letter_fonts]

BODY = "오늘 낮 기온이 38도까지 오릅니다. 한낮 야외 활동을 피하세요."
INSTRUCTION = "물을 자주 드세요. 가까운 무더위 쉼터를 이용하세요."
HOME = Address("김영희", ("세종대로 209, 101동 1203호", "서울특별시 종로구"), "03151")


def heat_wave(language: str = "ko", **extra) -> Message:
    fields = {"headline": "폭염 경보", "body": BODY, "instruction": INSTRUCTION,
              "page_url": "https://alerts.example/m/al_0123456789abcdef.Zx9_token", **extra}
    return Message("al_0123456789abcdef", "r000001", 3, 0, language, "Heat wave", "Severe", "Immediate", **fields)


def text_of(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode()


def char_sizes(pdf: bytes) -> list[tuple[str, float]]:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return [(c["text"], c["size"]) for page in doc.pages for c in page.chars if c["text"].strip()]


def test_low_vision_korean_resident_gets_korean_text_in_large_print():
    letter = render(heat_wave(), HOME, Layout.for_needs(frozenset({"low_vision"})))
    text = text_of(letter.pdf)
    assert "폭염 경보" in text
    assert "무더위 쉼터" in text
    assert "김영희" in text
    sizes = char_sizes(letter.pdf)
    hangul = [size for ch, size in sizes if "\uac00" <= ch <= "\ud7a3"]
    assert hangul, "the Korean text must be real text, not pictures"
    # Every character, the body above all, is at least 18 pt.
    assert min(size for _, size in sizes) >= 18 - 0.01
    assert letter.layout == "large_print"


def test_a_standard_letter_fits_one_page_in_ordinary_print():
    letter = render(heat_wave(), HOME, Layout())
    assert letter.pages == 1
    body = [size for ch, size in char_sizes(letter.pdf) if ch in "낮기온"]
    assert 10 <= min(body) <= 12


def test_easy_read_puts_one_sentence_on_a_line_and_numbers_what_to_do():
    source = html(heat_wave(), HOME, Layout.for_needs(frozenset({"low_literacy"})))
    assert "<p>오늘 낮 기온이 38도까지 오릅니다.</p>" in source
    assert "<li>물을 자주 드세요.</li>" in source
    letter = render(heat_wave(), HOME, Layout.for_needs(frozenset({"low_literacy"})))
    assert "중요한 안내입니다" in text_of(letter.pdf)


def test_the_short_form_leads_an_easy_read_letter_when_the_agency_wrote_one():
    source = html(heat_wave(short="오늘 아주 덥습니다."), HOME, Layout(easy_read=True))
    assert "<p>오늘 아주 덥습니다.</p>" in source and BODY not in source


def test_every_letter_carries_a_qr_code_and_the_link_to_the_web_version():
    message = heat_wave()
    source = html(message, HOME, Layout())
    assert 'src="data:image/svg+xml' in source
    letter = render(message, HOME, Layout())
    with pdfplumber.open(io.BytesIO(letter.pdf)) as doc:
        assert doc.pages[0].images or doc.pages[0].rects or doc.pages[0].curves
    assert message.page_url in text_of(letter.pdf).replace("\n", "")


def test_letter_follows_the_message_language_with_its_own_words_and_date():
    message = Message("al_1", "r1", 0, 0, "zh-CN", "Heat wave", "Severe", "Immediate", headline="高温警报",
                      body="今天最高气温将达38度。", page_url="https://alerts.example/m/al_1.tok")
    source = html(message, HOME, Layout(), today=datetime.date(2025, 7, 1))
    assert '<html lang="zh-CN">' in source
    assert "2025年7月1日" in source and "严重警告" in source and "Noto Sans CJK SC" in source
    assert "高温警报" in text_of(render(message, HOME, Layout()).pdf)


def test_agency_text_is_printed_as_text_and_fetches_nothing():
    message = heat_wave(body='<img src="file:///etc/passwd"> <b>bold</b>')
    letter = render(message, HOME, Layout())
    text = text_of(letter.pdf)
    assert '<img src="file:///etc/passwd">' in text.replace("\n", " ")


def test_sentences_split_in_korean_chinese_and_english():
    assert sentences("하나입니다. 둘입니다.") == ["하나입니다.", "둘입니다."]
    assert sentences("第一句。第二句！") == ["第一句。", "第二句！"]
    assert sentences("One. Two? Three") == ["One.", "Two?", "Three"]


# Letters a screen reader can read (PDF/UA-1) -------------------------------------

def pdf_structure(pdf: bytes) -> dict:
    """What a screen reader relies on: the catalog's tags, language, title and
    PDF/UA claim, and the structure tree's elements in reading order."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import resolve1

    catalog = PDFDocument(PDFParser(io.BytesIO(pdf))).catalog
    order = []

    def walk(node):
        node = resolve1(node)
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            if "S" in node:
                order.append((node["S"].name, node.get("Alt")))
            walk(node.get("K"))

    walk(catalog.get("StructTreeRoot"))
    return {
        "marked": resolve1(resolve1(catalog.get("MarkInfo") or {}).get("Marked")),
        "lang": resolve1(catalog.get("Lang")),
        "display_title": resolve1(resolve1(catalog.get("ViewerPreferences") or {}).get("DisplayDocTitle")),
        "xmp": resolve1(catalog["Metadata"]).get_data().decode() if "Metadata" in catalog else "",
        "order": order,
    }


@pytest.mark.parametrize("language, headline, qr_words", [("ko", "폭염 경보", "QR 코드"),
                                                          ("en", "Heat wave warning", "QR code")])
def test_a_screen_reader_user_gets_a_tagged_letter_in_their_language(language, headline, qr_words):
    letter = render(heat_wave(language, headline=headline), HOME, Layout())
    pdf = pdf_structure(letter.pdf)
    assert pdf["marked"] is True and pdf["lang"] == language.encode()
    # The title bar shows the headline, not a file name; the file says it is PDF/UA-1.
    assert pdf["display_title"] is True
    assert 'pdfuaid:part="1"' in pdf["xmp"] and headline in pdf["xmp"]
    tags = [tag for tag, _ in pdf["order"]]
    assert tags[0] == "Document"
    # Reading order: address, the headline, then what to do, then how to answer.
    assert tags.index("H1") < tags.index("H2") < tags.index("Figure")
    # The QR code is described in the resident's words, with where it leads.
    [alt] = [alt for tag, alt in pdf["order"] if tag == "Figure"]
    assert qr_words in decode_pdf_text(alt)


def decode_pdf_text(raw: bytes) -> str:
    """A PDF text string: UTF-16 behind a byte-order mark, else PDFDocEncoding (ASCII here)."""
    return raw[2:].decode("utf-16-be") if raw.startswith(b"\xfe\xff") else raw.decode("latin-1")
