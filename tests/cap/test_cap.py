"""CAP 1.2 in and out (gateway/cap/), against hand-written documents in samples/."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import xmlschema
from jsonschema import Draft202012Validator, FormatChecker

from gateway.cap import parse
from gateway.cap.emit import emit_cap
from gateway.cap.parse import MAX_CAP_BYTES, CapAlert, CapError, parse_cap
from gateway.geo import audience_problems
from gateway.schemas import ALERT

SAMPLES = Path(__file__).parent / "samples"
XSD = Path(parse.__file__).resolve().parent / "CAP-v1.2.xsd"  # OASIS' schema, shipped with the package
KST = timezone(timedelta(hours=9))
ACCEPTED = ["ko_heatwave.xml", "flood_circle.xml", "flood_update.xml", "flood_cancel.xml", "latin1_feed.xml"]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def assert_valid_alert(alert: dict) -> None:
    # The same checker as gateway.problems uses for the API.
    errors = list(Draft202012Validator(ALERT, format_checker=FormatChecker()).iter_errors(alert))
    assert not errors, [e.message for e in errors]
    assert audience_problems(alert["audience"]) == []


def problems_of(data: bytes) -> list[dict]:
    with pytest.raises(CapError) as caught:
        parse_cap(data)
    problems = caught.value.problems
    assert problems and all(set(p) == {"element", "detail"} for p in problems)
    return problems


def elements(data: bytes) -> set[str]:
    return {p["element"] for p in problems_of(data)}


def emit_again(parsed: CapAlert) -> bytes:
    return emit_cap(
        parsed.alert,
        identifier=parsed.identifier,
        sender=parsed.sender,
        sent=parsed.sent,
        msg_type=parsed.msg_type,
        references=parsed.references,
        status=parsed.status,
        response_types=parsed.response_types,
    )


# --- accepted documents ----------------------------------------------------------


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_samples_validate_against_alert_schema(name, xsd):
    # The hand-written samples are valid CAP, except the feed that is untidy on purpose.
    assert xsd.is_valid(sample(name)) == (name != "latin1_feed.xml")
    parsed = parse_cap(sample(name))
    assert_valid_alert(parsed.alert)
    assert parsed.sent.utcoffset() is not None


def test_korean_heat_wave():
    parsed = parse_cap(sample("ko_heatwave.xml"))
    assert parsed.identifier == "KR.SEOUL.HEAT.20240801-001"
    assert parsed.sender == "heat-alerts@seoul.example.go.kr"
    assert parsed.sent == datetime(2024, 8, 1, 11, 0, tzinfo=KST)
    assert (parsed.status, parsed.msg_type, parsed.scope) == ("Actual", "Alert", "Public")
    assert parsed.references == []
    assert parsed.response_types == ["Avoid", "Prepare"]
    assert parsed.warnings == []
    alert = parsed.alert
    assert list(alert["content"]) == ["ko-KR", "en-US"]  # BCP 47 tags kept as sent
    ko = alert["content"]["ko-KR"]
    assert ko["headline"] == "[폭염경보] 종로구·중구 폭염경보 발효"
    assert ko["body"].startswith("서울 종로구와 중구에 폭염경보가")
    assert ko["instruction"].startswith("낮 12시부터")
    assert ko["link"] == "https://www.seoul.example.go.kr/heat/20240801"
    assert alert["content"]["en-US"]["headline"] == "Heat wave warning for Jongno-gu and Jung-gu"
    assert alert["event"] == "폭염경보"  # from the first info
    assert (alert["severity"], alert["urgency"], alert["certainty"]) == ("Severe", "Expected", "Likely")
    assert alert["status"] == "Actual"
    # Earliest expiry: the English info's 08:00 UTC is 17:00 KST, before 18:00 KST.
    assert datetime.fromisoformat(alert["expires"]) == datetime(2024, 8, 2, 17, 0, tzinfo=KST)
    # Both infos repeat the same area: it appears once.
    polygon = [[37.595, 126.96], [37.595, 127.015], [37.555, 127.025], [37.55, 126.965], [37.595, 126.96]]
    assert alert["audience"] == {
        "areas": [
            {"polygon": polygon},
            {"geocode": {"name": "SIG_CD", "value": "11110"}},
            {"geocode": {"name": "SIG_CD", "value": "11140"}},
        ]
    }
    # The polygon spans both districts: Jongno-gu office and Jung-gu office inside.
    for lat, lon in [(37.5735, 126.9790), (37.5641, 126.9979)]:
        assert 37.55 < lat < 37.595 and 126.965 < lon < 127.015


def test_flood_warning_with_circle():
    parsed = parse_cap(sample("flood_circle.xml"))
    alert = parsed.alert
    assert alert["audience"] == {"areas": [{"circle": {"lat": 35.21, "lon": 129.08, "radius_km": 3.5}}]}
    assert list(alert["content"]) == ["en"]
    assert (alert["severity"], alert["urgency"], alert["certainty"]) == ("Severe", "Immediate", "Likely")
    assert alert["expires"] == "2024-07-10T18:00:00+09:00"
    assert parsed.response_types == ["Evacuate", "Monitor"]
    assert "response_types" not in alert and "response_options" not in alert


def test_update_and_cancel_carry_references():
    update = parse_cap(sample("flood_update.xml"))
    assert update.msg_type == "Update"
    assert update.references == [
        ("flood@busan.example.go.kr", "KR.BUSAN.FLOOD.0001", datetime(2024, 7, 10, 5, 30, tzinfo=KST))
    ]
    assert update.alert["severity"] == "Extreme"
    cancel = parse_cap(sample("flood_cancel.xml"))
    assert cancel.msg_type == "Cancel"
    assert [r[1] for r in cancel.references] == ["KR.BUSAN.FLOOD.0001", "KR.BUSAN.FLOOD.0002"]
    assert cancel.references[1][2] == datetime(2024, 7, 10, 7, 5, tzinfo=KST)
    assert cancel.response_types == ["AllClear"]


def test_untidy_latin1_feed():
    data = sample("latin1_feed.xml")
    assert b"Montr\xe9al" in data  # really ISO-8859-1 on disk
    parsed = parse_cap(data)
    alert = parsed.alert
    assert parsed.identifier == "CA-QC-2024-0042"  # whitespace around it forgiven
    assert parsed.codes == ["profile:CAP-CP:0.4"]
    assert parsed.source is None and parsed.note is None  # empty: as if absent
    en = alert["content"]["en-CA"]
    assert en["headline"] == "Extreme cold warning for Montréal: wind chill near -40 °C"
    assert en["body"] == ("Wind chill values near -40 °C are expected tonight in Montréal and Laval.\n"
                          "Frostbite can develop within minutes on exposed skin.")
    assert "instruction" not in en and "link" not in en  # empty elements dropped
    fr = alert["content"]["fr-CA"]
    assert fr["instruction"] == "Couvrez-vous bien. Vérifiez l'état de vos proches âgés."
    # Third info repeats en-CA: its text is ignored, its rating and area still count.
    assert set(alert["content"]) == {"en-CA", "fr-CA"}
    assert (alert["severity"], alert["urgency"], alert["certainty"]) == ("Severe", "Immediate", "Observed")
    assert alert["event"] == "extreme cold"
    assert alert["expires"] == "2024-01-16T06:00:00-05:00"
    assert alert["audience"]["areas"] == [
        {"polygon": [[45.7, -73.97], [45.7, -73.47], [45.4, -73.47], [45.4, -73.97], [45.7, -73.97]]},
        {"geocode": {"name": "profile:CAP-CP:Location:0.3", "value": "2466023"}},
        {"circle": {"lat": 46.05, "lon": -74.3, "radius_km": 40.0}},
    ]
    warnings = "\n".join(parsed.warnings)
    assert "alert/info[3]: language en-CA was already given by alert/info[1]" in warnings
    assert "georss.org/georss}point: ignored" in warnings  # foreign element outside the allowed slot
    assert "Signature" not in warnings  # CAP allows an XML signature there
    assert "alert/info[1]/web: ignored: empty" in warnings
    assert "alert/info[3]/severity: read 'severe' as 'Severe'" in warnings


def test_any_prefix_and_encoding_the_parser_cannot_read_alone():
    # EUC-KR is what many Korean systems still write; expat cannot decode it.
    text = sample("ko_heatwave.xml").decode("utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="EUC-KR"')
    text = re.sub(r"<(/?)(\w)", r"<\1c:\2", text.replace('xmlns="urn', 'xmlns:c="urn'))
    assert "<c:alert xmlns:c=" in text and "</c:info>" in text
    data = text.encode("euc-kr")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert parse_cap(data).alert == parse_cap(sample("ko_heatwave.xml")).alert


def test_foreign_element_inside_text_keeps_the_text_around_it():
    data = sample("flood_circle.xml").replace(
        b"within two hours", b"within <x:em xmlns:x='urn:example'>two</x:em> hours")
    parsed = parse_cap(data)
    assert parsed.alert == parse_cap(sample("flood_circle.xml")).alert
    assert parsed.warnings == ["alert/info[1]/description/{urn:example}em: ignored: not a CAP element"]


def test_out_of_order_elements_are_read_with_a_warning():
    data = sample("flood_circle.xml").replace(
        b"<urgency>Immediate</urgency>\n    <severity>Severe</severity>",
        b"<severity>Severe</severity>\n    <urgency>Immediate</urgency>",
    )
    parsed = parse_cap(data)
    assert parsed.alert == parse_cap(sample("flood_circle.xml")).alert
    assert parsed.warnings == ["alert/info[1]: child elements are not in CAP order; read by name"]


def test_missing_texts_fall_back_and_long_headline_is_shortened():
    data = sample("flood_circle.xml")
    data = data.replace(b"<description>", b"<!--").replace(b"</description>", b"-->")
    data = data.replace(b"Flood warning: Oncheoncheon stream, Dongnae-gu", b"Flood " * 40)
    parsed = parse_cap(data)
    en = parsed.alert["content"]["en"]
    assert len(en["headline"]) == 160 and en["headline"].endswith("…")
    assert en["body"] == en["headline"]
    assert_valid_alert(parsed.alert)
    assert any("shortened" in w for w in parsed.warnings)


def test_cancel_without_info_has_no_alert():
    data = sample("flood_cancel.xml")
    data = data[: data.index(b"<info>")] + b"</alert>\n"
    parsed = parse_cap(data)
    assert parsed.msg_type == "Cancel" and parsed.alert is None and len(parsed.references) == 2


def test_exercise_and_test_map_to_themselves():
    for status in (b"Exercise", b"Test"):
        data = sample("flood_circle.xml").replace(b"<status>Actual</status>", b"<status>" + status + b"</status>")
        assert parse_cap(data).alert["status"] == status.decode()


def test_utc_offset_minus_zero():
    data = sample("flood_circle.xml").replace(b"2024-07-10T18:00:00+09:00", b"2024-07-10T09:00:00-00:00")
    assert parse_cap(data).alert["expires"] == "2024-07-10T09:00:00+00:00"


# --- refused documents -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, element, words",
    [
        ("bad_missing_identifier.xml", "alert/identifier", "required"),
        ("bad_severity.xml", "alert/info[1]/severity", "'Catastrophic' is not one of"),
        ("bad_sent_z.xml", "alert/sent", "'Z'"),
        ("bad_polygon_3points.xml", "alert/info[2]/area[1]/polygon", "at least 4"),
        ("bad_update_no_references.xml", "alert/references", "Update"),
        ("bad_xxe.xml", "/", "DTD"),
        ("bad_billion_laughs.xml", "/", "DTD"),
    ],
)
def test_refused_samples_name_the_element(name, element, words):
    problems = problems_of(sample(name))
    assert [p["element"] for p in problems] == [element]
    assert words in problems[0]["detail"]


def test_unclosed_polygon_named_in_both_infos():
    problems = problems_of(sample("bad_polygon_unclosed.xml"))
    assert [p["element"] for p in problems] == ["alert/info[1]/area[1]/polygon", "alert/info[2]/area[1]/polygon"]
    assert all("not closed" in p["detail"] for p in problems)


def test_every_problem_is_reported_at_once():
    assert elements(sample("bad_many_problems.xml")) == {
        "alert/identifier",  # a space in it
        "alert/sender",  # missing
        "alert/sent",  # no T, no offset
        "alert/status",  # 'Real'
        "alert/restriction",  # scope Restricted without it
        "alert/info[1]/category",  # 'Weather'
        "alert/info[1]/urgency",  # 'Now'
        "alert/info[1]/expires",  # 'Z'
        "alert/info[1]/severty",  # misspelt element
        "alert/info[1]/area[1]/circle",  # latitude 95
        "alert/info[2]",  # no area
    }


def test_document_over_one_mebibyte_is_refused_before_parsing():
    data = sample("flood_circle.xml").replace(b"</alert>", b"<!--" + b"x" * MAX_CAP_BYTES + b"--></alert>")
    problems = problems_of(data)
    assert problems[0]["element"] == "/" and "limit" in problems[0]["detail"]


@pytest.mark.parametrize(
    "old, new, element, words",
    [
        (b"<status>Actual</status>", b"<status>Draft</status>", "alert/status", "not deliverable"),
        (b"<status>Actual</status>", b"<status>System</status>", "alert/status", "not deliverable"),
        (b"<circle>35.2100,129.0800 3.5</circle>", b"", "alert/info[1]", "nothing to target"),
        (b"<circle>35.2100,129.0800 3.5</circle>", b"<circle>35.21,129.08</circle>", "alert/info[1]/area[1]/circle",
         "lat,lon radius_km"),
        (b"<circle>35.2100,129.0800 3.5</circle>", b"<circle>35.21,189.08 3</circle>",
         "alert/info[1]/area[1]/circle", "longitude"),
        (b"<circle>35.2100,129.0800 3.5</circle>", b"<polygon>1,1 1,2 x,2 1,1</polygon>",
         "alert/info[1]/area[1]/polygon", "not a decimal"),
        (b"<scope>Public</scope>", b"<scope>Private</scope>", "alert/addresses", "Private"),
        (b"<sender>flood@busan.example.go.kr</sender>", b"<sender>flood@busan.example.go.kr</sender><sender>x</sender>",
         "alert/sender[2]", "once"),
        (b"<language>en</language>", b"<language>english-please</language>", "alert/info[1]/language", "BCP 47"),
        (b"<onset>2024-07-10T06:00:00+09:00</onset>", b"<onset>2024-13-10T06:00:00+09:00</onset>",
         "alert/info[1]/onset", "not a real date"),
        (b"<sent>2024-07-10T05:30:00+09:00</sent>", b"<sent>2024-07-10T05:30:00.250+09:00</sent>", "alert/sent",
         "no fractions"),
        (b"</area>", b"<ceiling>300</ceiling></area>", "alert/info[1]/area[1]/ceiling", "altitude"),
        (b"<msgType>Alert</msgType>", b"<msgType>Alert</msgType><references>a,b</references>",
         "alert/references", "sender,identifier,sent"),
        (b"<msgType>Alert</msgType>", b"<msgType>Update</msgType><references>a,b,2024-01-01T00:00:00Z</references>",
         "alert/references", "'Z'"),
        (b"The Oncheoncheon stream is expected", b"x" * 4001, "alert/info[1]/description", "at most 4000"),
    ],
)
def test_refused_variants(old, new, element, words):
    data = sample("flood_circle.xml")
    assert old in data
    problems = problems_of(data.replace(old, new, 1))
    assert element in [p["element"] for p in problems], problems
    assert any(words in p["detail"] for p in problems if p["element"] == element), problems


def test_alert_without_info_is_refused():
    data = sample("flood_circle.xml")
    data = data[: data.index(b"<info>")] + b"</alert>\n"
    assert elements(data) == {"alert/info"}


@pytest.mark.parametrize(
    "data, words",
    [
        (b"<alert>not closed", "not well-formed"),
        (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.1'/>", "not CAP 1.2"),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "root element"),
        (b"<?xml version='1.0' encoding='klingon-8'?><alert/>", "unknown character encoding"),
        (b"<?xml version='1.0' encoding='EUC-KR'?><alert>\xff\xff</alert>", "not valid EUC-KR"),
    ],
)
def test_refused_documents(data, words):
    problems = problems_of(data)
    assert len(problems) == 1 and words in problems[0]["detail"]


def test_xsd_layer_names_elements_by_path():
    # The XSD runs after the domain checks and reports what they did not name,
    # with the same paths: here it is given a tree the domain checks never saw.
    root = parse._load(sample("bad_severity.xml"))
    ctx = parse.Ctx(root)
    parse._xsd_layer(ctx, root)
    assert [p["element"] for p in ctx.problems] == ["alert/info[1]/severity"]
    assert ctx.problems[0]["detail"].startswith("not valid CAP 1.2")


# --- writing -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ACCEPTED)
def test_round_trip(name, xsd):
    parsed = parse_cap(sample(name))
    out = emit_again(parsed)
    assert out.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    xsd.validate(out)
    again = parse_cap(out)
    assert again.alert == parsed.alert
    assert again.warnings == []
    assert (again.identifier, again.sender, again.sent, again.msg_type, again.status, again.references) == (
        parsed.identifier, parsed.sender, parsed.sent, parsed.msg_type, parsed.status, parsed.references)
    assert again.response_types == parsed.response_types


def test_emit_from_a_json_alert(xsd):
    alert = {
        "event": "Water supply interruption",
        "status": "Test",
        "severity": "Minor",
        "content": {
            "ko": {"headline": "단수 안내", "body": "내일 오전 9시부터 단수됩니다.\r\n물을 받아 두십시오.", "short": "단수"},
            "en": {"headline": "Water cut", "body": "Water is off from 9 a.m. tomorrow."},
        },
        "audience": {"districts": ["11110"], "everyone": True, "residents": ["r-1"],
                     "areas": [{"circle": {"lat": 37.5, "lon": 127, "radius_km": 0.25}}]},
        "policy": {"channels": ["sms"]},
        "expires": "2024-08-02T00:00:00.5Z",
    }
    assert_valid_alert(alert)
    sent = datetime(2024, 8, 1, 9, 0, tzinfo=timezone.utc)
    out = emit_cap(alert, identifier="GW-1", sender="gateway.example", sent=sent, categories=("Infra",),
                   response_types=("Prepare",))
    xsd.validate(out)
    assert b"<sent>2024-08-01T09:00:00-00:00</sent>" in out  # CAP's UTC spelling
    assert b"<expires>2024-08-02T00:00:00-00:00</expires>" in out
    assert b"r-1" not in out  # resident ids never leave the gateway
    parsed = parse_cap(out)
    assert parsed.status == "Test" and parsed.response_types == ["Prepare"]
    assert parsed.alert["content"]["ko"]["body"] == "내일 오전 9시부터 단수됩니다.\n물을 받아 두십시오."
    assert parsed.alert["audience"]["areas"] == [
        {"circle": {"lat": 37.5, "lon": 127.0, "radius_km": 0.25}},
        {"geocode": {"name": "district", "value": "11110"}},
    ]
    assert parsed.alert["urgency"] == "Unknown" and parsed.alert["certainty"] == "Unknown"


def test_emit_refuses_what_would_be_bad_cap():
    alert = copy.deepcopy(parse_cap(sample("flood_circle.xml")).alert)
    sent = datetime(2024, 8, 1, 9, 0, tzinfo=KST)
    with pytest.raises(ValueError, match="aware"):
        emit_cap(alert, identifier="a", sender="b", sent=datetime(2024, 8, 1, 9, 0))
    with pytest.raises(ValueError, match="references"):
        emit_cap(alert, identifier="a", sender="b", sent=sent, msg_type="Update")
    with pytest.raises(ValueError, match="identifier"):
        emit_cap(alert, identifier="a b", sender="b", sent=sent)
    with pytest.raises(ValueError, match="status"):
        emit_cap(alert, identifier="a", sender="b", sent=sent, status="Real")
    with pytest.raises(ValueError, match="severity"):
        emit_cap({**alert, "severity": "Bad"}, identifier="a", sender="b", sent=sent)
    unclosed = {**alert, "audience": {"areas": [{"polygon": [[1, 1], [1, 2], [2, 2], [2, 1]]}]}}
    with pytest.raises(ValueError, match="not closed"):
        emit_cap(unclosed, identifier="a", sender="b", sent=sent)


def test_an_unclosed_polygon_in_a_json_alert_is_named():
    alert = {"audience": {"areas": [{"circle": {"lat": 0, "lon": 0, "radius_km": 1}},
                                    {"polygon": [[1, 1], [1, 2], [2, 2], [2, 1]]}]}}
    assert audience_problems(alert["audience"]) == [
        {"field": "/audience/areas/1/polygon",
         "detail": "the polygon is not closed: its first and last points must be the same"}
    ]


def test_a_polygon_that_encloses_no_area_is_refused_and_a_bow_tie_is_taken():
    line = [[37.5, 126.9], [37.6, 126.9], [37.55, 126.9], [37.5, 126.9]]  # every point on one meridian
    bow_tie = [[37.5, 126.9], [37.6, 127.0], [37.6, 126.9], [37.5, 127.0], [37.5, 126.9]]
    alert = {"audience": {"areas": [{"polygon": line}, {"polygon": bow_tie}]}}
    assert audience_problems(alert["audience"]) == [
        {"field": "/audience/areas/0/polygon",
         "detail": "the polygon encloses no area: its points lie on one line"}
    ]


def test_schema_areas_bounds():
    validator = Draft202012Validator(ALERT)
    base = {"event": "x", "severity": "Minor", "content": {"en": {"headline": "h", "body": "b"}}}
    good = [{"polygon": [[0, 0], [0, 1], [1, 1], [0, 0]]}, {"circle": {"lat": 0, "lon": 0, "radius_km": 0}},
            {"geocode": {"name": "SAME", "value": "006037"}}]
    assert validator.is_valid({**base, "audience": {"areas": good}})
    for bad in (
        [{"polygon": [[0, 0], [0, 1], [0, 0]]}],  # 3 points
        [{"polygon": [[0, 0, 5], [0, 1], [1, 1], [0, 0]]}],  # not a pair
        [{"polygon": [[91, 0], [0, 1], [1, 1], [91, 0]]}],  # latitude
        [{"circle": {"lat": 0, "lon": 181, "radius_km": 1}}],
        [{"circle": {"lat": 0, "lon": 0, "radius_km": -1}}],
        [{"circle": {"lat": 0, "lon": 0}}],
        [{"geocode": {"name": "", "value": "1"}}],
        [{"geocode": {"name": "a", "value": "1", "extra": 1}}],
        [{"polygon": [[0, 0], [0, 1], [1, 1], [0, 0]], "circle": {"lat": 0, "lon": 0, "radius_km": 1}}],
        [],
        [{"geocode": {"name": "a", "value": str(i)}} for i in range(101)],
    ):
        assert not validator.is_valid({**base, "audience": {"areas": bad}}), bad
