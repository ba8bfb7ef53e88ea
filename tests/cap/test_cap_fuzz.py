"""Whatever an agency's feed sends as CAP, the parser answers with the
document's problems (a 422 naming each element) or an alert: no other
exception, which the API would turn into a 500. Bounded by max_examples."""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cap.parse import CapError, parse_cap

SAMPLES = sorted((Path(__file__).parent / "samples").glob("*.xml"))
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# The texts that make CAP hard: times, polygons, circles, codes, languages, numbers, markup.
TRICKY = st.sampled_from([
    "", " ", "0", "-1", "1e309", "NaN", "inf", "37.5,126.9 37.6,127.0", "37.5,126.9 0", "91,181 -91,-181",
    "37.5,126.9 37.5,126.9 37.5,126.9 37.5,126.9", "2026-12-03T09:00:00+09:00", "2026-13-40T25:61:61-00:00",
    "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00+00:00", "Actual", "Alert", "Update", "Cancel", "Extreme",
    "ko-KR", "x" * 5000, "<b>bold</b>", "&amp;", "\u202e", "\ufeff", "\x00", "한국어", "a,b,c d,e,f",
])
TEXT = st.one_of(TRICKY, st.text(max_size=60))


def cap_parses_or_names_its_problems(data: bytes) -> None:
    try:
        parse_cap(data)
    except CapError as e:
        assert e.problems and all({"element", "detail"} <= set(p) for p in e.problems)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_refused_with_a_reason(data):
    cap_parses_or_names_its_problems(data)


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_a_sample_with_any_element_text_replaced_is_parsed_or_refused_naming_it(sample, data):
    text = sample.read_text("utf-8", errors="replace") if sample.name != "latin1_feed.xml" else \
        sample.read_text("latin-1")
    texts = list(re.finditer(r">([^<>]*)</", text))
    for _ in range(data.draw(st.integers(1, 4))):
        if not texts:
            break
        m = data.draw(st.sampled_from(texts))
        new = data.draw(TEXT)
        new = escape(new) if data.draw(st.booleans()) else new  # raw markup too: it must not break out
        text = text[:m.start(1)] + new + text[m.end(1):]
        texts = list(re.finditer(r">([^<>]*)</", text))
    cap_parses_or_names_its_problems(text.encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_a_sample_cut_or_with_elements_repeated_or_dropped_is_parsed_or_refused(sample, data):
    raw = sample.read_bytes()
    elements = list(re.finditer(rb"<(\w+)>[^<]*</\1>", raw))
    action = data.draw(st.sampled_from(["cut", "repeat", "drop"]))
    if action == "cut":
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at]
    elif elements:
        m = data.draw(st.sampled_from(elements))
        raw = raw[:m.start()] + (m.group(0) * data.draw(st.integers(2, 5)) if action == "repeat" else b"") + \
            raw[m.end():]
    cap_parses_or_names_its_problems(raw)
