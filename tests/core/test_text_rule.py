"""One rule for the text residents get (gateway/schemas.TEXT_PATTERN): no control
character but tab, line feed and carriage return, and more than spaces where
the text is required. Whatever the API accepts is
spoken, texted, pushed, printed and sent out as CAP in every language; whatever
it refuses is named, field by field."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import Message
from channels.letters import Address, Layout, html, render
from channels.push import fcm_message, notification
from channels.sms_text import render_sms
from channels.voice_script import alert_twiml, gather_twiml, machine_twiml
from gateway.cap.emit import emit_cap
from gateway.cap.parse import CapError, parse_cap
from gateway.problems import field_errors
from gateway.schemas import ALERT, RESIDENT, UNSENDABLE
from tests.letter_fonts import needs_letter_fonts

LANGUAGES = ["ko", "en", "zh", "ja", "vi"]
UNSENDABLE_RE = re.compile(f"[{UNSENDABLE}]")
KST = timezone(timedelta(hours=9))

# Every code point a JSON string can carry (lone surrogates are not JSON),
# with the dangerous ones drawn often.
ANY_CHAR = st.one_of(st.characters(exclude_categories=["Cs"]),
                     st.sampled_from(["\x00", "\x12", "\x1b", "\x7f", "\x85", "\x9f", "\ufffe", "\uffff",
                                      "\t", "\n", "\r", "\u2028", "&", "<", "]", "\u202e", "\U0001f30a"]))
TEXT = st.text(ANY_CHAR, min_size=1, max_size=80)


def alert(language: str, headline: str, body: str, instruction: str, event: str) -> dict:
    return {"event": event, "severity": "Severe", "urgency": "Immediate",
            "content": {language: {"headline": headline, "body": body, "instruction": instruction}},
            "audience": {"areas": [{"circle": {"lat": 37.57, "lon": 126.98, "radius_km": 2}}]}}


def message(doc: dict, language: str) -> Message:
    c = doc["content"][language]
    return Message(alert_id="al_1", resident_id="r1", step=0, attempt=0, language=language,
                   event=doc["event"], severity=doc["severity"], urgency=doc["urgency"], headline=c["headline"],
                   body=c["body"], instruction=c["instruction"], page_url="https://gw.example/m/al_1.tok",
                   response_options=(("2", "도움이 필요해요"),))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(language=st.sampled_from(LANGUAGES), headline=TEXT, body=TEXT, instruction=TEXT, event=TEXT)
def test_the_api_refuses_exactly_the_text_with_control_characters_or_only_spaces_and_names_each_field(
        language, headline, body, instruction, event):
    doc = alert(language, headline[:160], body, instruction, event)
    errors = {e["field"]: e["detail"] for e in field_errors(ALERT, doc)}
    fields = {"/event": doc["event"], f"/content/{language}/headline": headline[:160],
              f"/content/{language}/body": body, f"/content/{language}/instruction": instruction}
    for field, text in fields.items():
        bad = UNSENDABLE_RE.search(text)
        blank = text.isspace() and not field.endswith("/instruction")  # the others must say something
        assert (field in errors) == bool(bad or blank), (field, text)
        if bad:
            assert f"U+{ord(bad.group()):04X}" in errors[field]
        elif blank:
            assert errors[field] == "is only spaces"


class _Html(HTMLParser):
    def error(self, message):  # pragma: no cover - HTMLParser never calls it in 3.11
        raise AssertionError(message)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(language=st.sampled_from(LANGUAGES), headline=TEXT, body=TEXT, instruction=TEXT, event=TEXT)
def test_any_text_the_api_accepts_renders_in_every_channel_and_language(language, headline, body, instruction, event):
    doc = alert(language, headline[:160], body, instruction, event)
    if field_errors(ALERT, doc):
        return  # refused at the API: no channel ever sees it (the test above)
    m = message(doc, language)

    for handset in ("smartphone", "feature_phone"):
        sms = render_sms(m, handset=handset, segment_budget=4)
        assert sms.text and not UNSENDABLE_RE.search(sms.text)

    for slow in (False, True):
        for twiml in (alert_twiml(m, gather_action="https://gw.example/g", slow=slow),
                      machine_twiml(m, slow=slow),
                      gather_twiml(m, "9", gather_action="https://gw.example/g", slow=slow)[0]):
            assert ET.fromstring(twiml.encode()).tag == "Response"

    title, text = notification(m)
    payload = orjson.dumps(fcm_message("tok" * 10, title, text, {"alert": "al_1"}, 60))
    assert orjson.loads(payload)["notification"]["title"] == title

    for layout in (Layout(), Layout(large_print=True, easy_read=True)):
        page = html(m, Address("김민지", ("세종대로 209",), "03151"), layout)
        _Html().feed(page)
        assert "</html>" in page

    cap = emit_cap(doc, identifier="al_1", sender="gw@city.example", sent=datetime(2026, 12, 3, 9, tzinfo=KST))
    back = parse_cap(cap).alert
    # Every word comes back (CAP in trims the ends, XML reads line ends as line feeds).
    assert back["content"][language]["body"].split() == body.split()


@pytest.mark.parametrize("text", ["폭염\x12경보", "Flood\x85warning", "\x7f", "a\x1bb"])
def test_a_resident_name_or_address_with_a_control_character_is_named(text):
    doc = {"id": "r1", "languages": ["ko"], "district": "11110", "name": text,
           "contacts": [{"type": "postal", "lines": [text], "postcode": "03151"}]}
    assert {e["field"] for e in field_errors(RESIDENT, doc)} == {"/name", "/contacts/0/lines/0"}


def test_cap_in_refuses_a_c1_control_that_xml_lets_through():
    cap = emit_cap(alert("en", "Flood", "River rising", "Go up", "Flood"), identifier="x1",
                   sender="gw@city.example", sent=datetime(2026, 12, 3, 9, tzinfo=KST))
    bad = cap.replace(b"River rising", "River\u0085rising".encode())
    with pytest.raises(CapError) as caught:
        parse_cap(bad)
    problems = orjson.dumps(caught.value.problems).decode() if hasattr(caught.value, "problems") else str(caught.value)
    assert "description" in problems and "U+0085" in problems


@needs_letter_fonts
@pytest.mark.parametrize("language, body", [
    ("ko", "하천이\t범람합니다.\r\n\u2028높은 곳으로 </p><script>대피</script> & ]]>"),
    ("en", "\u202eevif\u202c 🌊 Flood\u00a0warning\u200b. " * 20),
    ("zh", "河水上涨。\n\n\n请撤离！" + "\u0301" * 30),
])
def test_a_few_accepted_texts_print_as_letters(language, body):
    doc = alert(language, "경보", body, "\t", "Flood")
    assert field_errors(ALERT, doc) == []
    letter = render(message(doc, language), Address("김민지", ("세종대로 209",), "03151"), Layout(large_print=True))
    assert letter.pdf.startswith(b"%PDF") and letter.pages >= 1
