"""Text that no channel can carry is refused where it comes in, and a call that
still cannot be spoken falls back to the next channel instead of failing Twilio's
webhook (and with it every call of the alert)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from stackkit import call

from gateway import keys

pytestmark = pytest.mark.e2e

SEVERE = {"event": "Flood", "severity": "Severe", "urgency": "Immediate",
          "content": {"ko": {"headline": "홍수 경보", "body": "하천이 범람하고 있습니다.",
                             "instruction": "높은 곳으로 대피하세요."}},
          "audience": {"districts": ["11110"]},
          "policy": {"step_timeouts": {"voice": 60, "sms": 30}}}


async def test_an_alert_with_a_control_character_is_refused_naming_the_field_and_nothing_is_sent(city):
    bad = {**SEVERE, "content": {"ko": {**SEVERE["content"]["ko"], "body": "하천이\x12 범람"},
                                 "en": {"headline": "Flood\x1b", "body": "River rising"}}}
    status, ctype, body = await call(city, "POST", "/v1/alerts", json=bad)
    assert (status, ctype) == (422, "application/problem+json")
    assert {e["field"] for e in body["errors"]} == {"/content/ko/body", "/content/en/headline"}
    assert "U+0012" in next(e["detail"] for e in body["errors"] if e["field"] == "/content/ko/body")
    assert await city.redis.zcard(keys.ALERTS) == 0


async def test_a_cap_alert_with_a_c1_control_is_refused_naming_the_element(city):
    cap = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>KR-SEOUL-1</identifier><sender>alerts@seoul.example</sender>
  <sent>2026-12-03T09:00:00+09:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>ko-KR</language><category>Met</category><event>Flood</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty><headline>홍수 경보</headline>
    <description>하천이\u0085범람</description>
    <area><areaDesc>Jongno</areaDesc><geocode><valueName>district</valueName><value>11110</value></geocode></area>
  </info>
</alert>""".encode()
    status, _, body = await call(city, "POST", "/v1/alerts", data=cap, headers={"Content-Type": "application/cap+xml"})
    assert status == 422
    assert any("description" in e["field"] and "U+0085" in e["detail"] for e in body["errors"]), body
    assert await city.redis.zcard(keys.ALERTS) == 0


async def test_a_call_that_cannot_be_spoken_falls_back_to_sms_and_twilio_never_sees_a_500(city):
    number = "+821055502222"
    await city.add({"id": "blind-1", "languages": ["ko"], "district": "11110", "needs": ["blind"],
                    "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]},
                   {"phones": [number], "voice": {"answer": "human", "ring_s": 2.0, "press": ["1"]}})
    aid = await city.post_alert(SEVERE)
    deadline = time.monotonic() + 30
    while not [r for r in city.received("blind-1") if r["channel"] == "voice"]:
        assert time.monotonic() < deadline, "no call was placed"
        await asyncio.sleep(0.01)
    # The phone rings; meanwhile the stored alert holds what the API refuses
    # today (as one accepted before the rule would).
    doc = orjson.loads(await city.redis.hget(keys.alert(aid), "doc"))
    doc["content"]["ko"]["body"] = "하천이\x12 범람하고 있습니다."
    await city.redis.hset(keys.alert(aid), mapping={"doc": orjson.dumps(doc), "version": 2})

    deadline = time.monotonic() + 60
    while not [r for r in city.received("blind-1") if r["channel"] == "sms"]:
        assert time.monotonic() < deadline, f"no fallback to SMS: {city.received('blind-1')}"
        await asyncio.sleep(0.05)
    path = await city.path(aid, "blind-1")
    voice = path["attempts"][0]
    assert voice["channel"] == "voice"
    # The hang-up's own "completed" comes after and moves nothing.
    assert [s.get("error_code") for s in voice["statuses"] if s["status"] == "failed"][0] == "unrenderable"
    call_record = next(r for r in city.received("blind-1") if r["channel"] == "voice")
    assert call_record["errors"] == []  # every webhook answered 2xx
