"""Agencies post CAP 1.2; the right residents get it, in their language, and bad CAP is named element by element."""

from __future__ import annotations

import pytest
from capkit import (
    FAST,
    FLOOD_CENTRE,
    JONGNO_INSIDE,
    JONGNO_OUTSIDE,
    JUNG_INSIDE,
    SAMPLES,
    answers_sms,
    cap_doc,
    feature_phone,
    placed,
    post_cap,
    texts,
)

from gateway.agencies import create_agency
from gateway.cap.parse import cap_schema, parse_cap
from gateway.geo import haversine_km

pytestmark = pytest.mark.e2e

HEAT = {"step_timeouts": FAST}


async def heat_wave_town(city) -> None:
    """Residents in and around the heat-wave polygon over Jongno-gu and Jung-gu."""
    people = [
        (placed("jongno-in", JONGNO_INSIDE, feature_phone("+821055510001")), answers_sms("+821055510001")),
        (placed("jung-in-en", JUNG_INSIDE, feature_phone("+821055510002"), district="11140",
                languages=("en",)), answers_sms("+821055510002")),
        (placed("jongno-out", JONGNO_OUTSIDE, feature_phone("+821055510003")), answers_sms("+821055510003")),
        # No home point on file: the SIG_CD geocode beside the polygon still reaches her.
        (placed("jongno-unplaced", None, feature_phone("+821055510004")), answers_sms("+821055510004")),
        (placed("mapo", None, feature_phone("+821055510005"), district="11440"), answers_sms("+821055510005")),
    ]
    for doc, behaviour in people:
        await city.add(doc, behaviour)


async def test_korean_heat_wave_reaches_those_inside_the_polygon_in_their_own_language(city):
    await heat_wave_town(city)
    status, body = await post_cap(city, cap_doc("ko_heatwave.xml"), HEAT)
    assert status == 202, body
    aid = body["id"]
    summary = await city.settled(aid)
    assert summary["targeted"] == 3
    assert summary["deliveries"]["confirmed"] == 3  # Severe: each one replied
    assert any("폭염" in t for t in texts(city, "jongno-in", "sms"))
    assert any("폭염" in t for t in texts(city, "jongno-unplaced", "sms"))
    english = texts(city, "jung-in-en", "sms")
    assert english and all("폭염" not in t for t in english) and any("Heat wave" in t for t in english)
    assert city.received("jongno-out") == [] and city.received("mapo") == []


async def test_a_flood_warning_reaches_everyone_within_its_circle_and_no_one_beyond(city):
    near = (FLOOD_CENTRE[0] + 3.0 / 111.195, FLOOD_CENTRE[1])  # 3 km north
    far = (FLOOD_CENTRE[0] + 4.0 / 111.195, FLOOD_CENTRE[1])  # 4 km north
    assert haversine_km(*FLOOD_CENTRE, *near) < 3.5 < haversine_km(*FLOOD_CENTRE, *far)
    await city.add(placed("near", near, feature_phone("+821055520001"), district="26260", languages=("en",)),
                   answers_sms("+821055520001"))
    await city.add(placed("far", far, feature_phone("+821055520002"), district="26260", languages=("en",)),
                   answers_sms("+821055520002"))
    status, body = await post_cap(city, cap_doc("flood_circle.xml"), HEAT)
    assert status == 202, body
    summary = await city.settled(body["id"])
    assert summary["targeted"] == 1
    assert any("Oncheoncheon" in t for t in texts(city, "near", "sms"))
    assert city.received("far") == []


async def test_the_same_cap_message_twice_is_one_alert_and_another_under_its_identifier_is_refused(city):
    await heat_wave_town(city)
    doc = cap_doc("ko_heatwave.xml")
    first = await post_cap(city, doc, HEAT)
    again = await post_cap(city, doc, HEAT)
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"] and again[1]["status"] == "already accepted"
    changed = doc.replace("35도".encode(), "37도".encode())
    status, problem = await post_cap(city, changed, HEAT)
    assert status == 409
    assert problem["errors"][0]["field"] == "alert/identifier"
    listed = await city.get("/v1/alerts")
    assert len(listed["alerts"]) == 1


@pytest.mark.parametrize("sample,fields", [
    ("bad_second_info_polygon.xml", {"alert/info[2]/area[1]/polygon"}),
    ("bad_polygon_unclosed.xml", {"alert/info[1]/area[1]/polygon", "alert/info[2]/area[1]/polygon"}),
    ("bad_sent_z.xml", {"alert/sent"}),
    ("bad_update_no_references.xml", None),
    ("bad_xxe.xml", {"/"}),
    ("bad_billion_laughs.xml", {"/"}),
])
async def test_malformed_cap_is_refused_naming_each_element(city, sample, fields):
    status, problem = await post_cap(city, (SAMPLES / sample).read_bytes(), HEAT)
    assert status == 422, problem
    assert problem["type"] == "about:blank" and problem["status"] == 422
    named = {e["field"] for e in problem["errors"]}
    if fields is None:
        assert any(f.startswith("alert/") for f in named)
    else:
        assert named == fields
    assert (await city.get("/v1/alerts"))["alerts"] == []  # nothing was written


async def test_many_mistakes_are_all_named_at_once(city):
    status, problem = await post_cap(city, (SAMPLES / "bad_many_problems.xml").read_bytes())
    assert status == 422
    named = {e["field"] for e in problem["errors"]}
    assert {"alert/sender", "alert/identifier", "alert/status", "alert/info[1]/urgency",
            "alert/info[1]/area[1]/circle", "alert/info[2]"} <= named


async def test_an_expired_cap_alert_is_refused(city):
    status, problem = await post_cap(city, (SAMPLES / "flood_circle.xml").read_bytes())  # expired in 2024
    assert status == 422
    assert problem["errors"][0]["field"] == "alert/info/expires"


async def test_ack_messages_and_unknown_media_types_are_refused(city):
    doc = cap_doc("flood_circle.xml").replace(b"<msgType>Alert</msgType>", b"<msgType>Ack</msgType>")
    doc = doc.replace(b"<scope>Public</scope>", b"<scope>Public</scope>\n  <references>"
                      b"flood@busan.example.go.kr,X,2024-07-10T05:30:00+09:00</references>")
    status, problem = await post_cap(city, doc)
    assert status == 422 and problem["errors"][0]["field"] == "alert/msgType"
    async with city.http.post(f"{city.api}/v1/alerts", data=b"hello",
                              headers={**city.auth, "Content-Type": "text/plain"}) as r:
        assert r.status == 415


async def test_a_bad_policy_header_is_named(city):
    status, problem = await post_cap(city, cap_doc("flood_circle.xml"), {"step_timeouts": {"sms": 0}})
    assert status == 422
    assert problem["errors"][0]["field"] == "Gateway-Policy/step_timeouts/sms"


async def test_an_exercise_reaches_only_residents_who_agreed_to_drills(city):
    await city.add(placed("volunteer", JONGNO_INSIDE, feature_phone("+821055530001"), drills=True),
                   answers_sms("+821055530001"))
    await city.add(placed("declined", JONGNO_INSIDE, feature_phone("+821055530002"), drills=False),
                   answers_sms("+821055530002"))
    status, body = await post_cap(city, cap_doc("ko_heatwave.xml", status="Exercise"), HEAT)
    assert status == 202, body
    summary = await city.settled(body["id"])
    assert summary["targeted"] == 1 and summary["drill"] == "Exercise"
    assert city.received("volunteer") and city.received("declined") == []


async def test_an_alert_comes_back_as_valid_cap(city):
    await heat_wave_town(city)
    original = cap_doc("ko_heatwave.xml")
    _, body = await post_cap(city, original, HEAT)
    async with city.http.get(f"{city.api}/v1/alerts/{body['id']}.cap", headers=city.auth) as r:
        assert r.status == 200 and r.content_type == "application/cap+xml"
        emitted = await r.read()
    schema = cap_schema()
    if schema is not None:
        import xml.etree.ElementTree as ET

        schema.validate(ET.fromstring(emitted))
    again, before = parse_cap(emitted), parse_cap(original)
    assert (again.identifier, again.sender, again.sent, again.msg_type) == (
        before.identifier, before.sender, before.sent, "Alert")
    assert set(again.alert["content"]) == {"ko-KR", "en-US"}
    assert again.alert["audience"]["areas"][0] == before.alert["audience"]["areas"][0]


async def test_a_json_alert_comes_back_as_cap_too_and_as_a_cancel_once_cancelled(city):
    await heat_wave_town(city)
    aid = await city.post_alert({"event": "Heat wave", "severity": "Moderate",
                                 "content": {"ko": {"headline": "폭염 주의보", "body": "물을 자주 드세요."}},
                                 "audience": {"districts": ["11110"]}, "policy": {"step_timeouts": FAST}})
    async with city.http.get(f"{city.api}/v1/alerts/{aid}.cap", headers=city.auth) as r:
        emitted = parse_cap(await r.read())
    assert emitted.identifier == aid and emitted.msg_type == "Alert"
    assert emitted.alert["audience"]["areas"] == [{"geocode": {"name": "district", "value": "11110"}}]
    # A CAP Cancel may refer to that message.
    cancel = cap_doc("flood_cancel.xml", identifier="CANCEL-1",
                     references=[(emitted.sender, emitted.identifier, emitted.sent)])
    status, body = await post_cap(city, cancel)
    assert status == 202 and body["id"] == aid and body["status"] == "cancelled", body
    async with city.http.get(f"{city.api}/v1/alerts/{aid}.cap", headers=city.auth) as r:
        cancel = parse_cap(await r.read())
    assert cancel.msg_type == "Cancel" and cancel.references[0][1] == aid


async def test_an_agency_may_target_only_its_own_area(city):
    await heat_wave_town(city)
    # Jongno-gu's office, by district: the heat-wave polygon reaches Jung-gu residents too.
    _, jongno_key = await create_agency(city.redis, "Jongno-gu office", districts=["11110"], rate_per_s=1000)
    status, problem = await post_cap(city, cap_doc("ko_heatwave.xml"), HEAT,
                                     Authorization=f"Bearer {jongno_key}")
    assert status == 422
    fields = {e["field"]: e["detail"] for e in problem["errors"]}
    assert "alert/info/area (polygon 1 of the alert)" in fields
    assert "1 resident outside" in fields["alert/info/area (polygon 1 of the alert)"]
    assert "alert/info/area (geocode 3 of the alert)" in fields  # SIG_CD 11140 is Jung-gu's
    # An office whose area is drawn: a circle across its border is refused, one inside taken.
    drawn = [[37.60, 126.95], [37.60, 127.02], [37.55, 127.02], [37.55, 126.95], [37.60, 126.95]]
    _, drawn_key = await create_agency(city.redis, "Central office", areas=[drawn], rate_per_s=1000)
    status, problem = await post_cap(city, cap_doc("flood_circle.xml"), HEAT, Authorization=f"Bearer {drawn_key}")
    assert status == 422 and problem["errors"][0]["field"] == "alert/info/area (circle 1 of the alert)"
    inside = cap_doc("flood_circle.xml").replace(b"35.2100,129.0800 3.5", b"37.5800,126.9800 1")
    status, body = await post_cap(city, inside, HEAT, Authorization=f"Bearer {drawn_key}")
    assert status == 202, body
