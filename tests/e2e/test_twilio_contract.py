"""What the gateway sends Twilio is what Twilio's own spec accepts, and what a
resident hears on the phone is in their language."""

from __future__ import annotations

import pytest

from tests.simulator.twilio_spec import spec_path, validate_form

pytestmark = pytest.mark.e2e


async def test_every_request_the_gateway_sends_twilio_is_valid_by_the_spec_and_a_korean_resident_hears_korean(city):
    await city.add({"id": "fp", "languages": ["ko"], "district": "11110",
                    "contacts": [{"type": "phone", "number": "+821055510001", "handset": "feature_phone"}]},
                   {"phones": ["+821055510001"], "sms": {"outcome": "undelivered", "error_code": 30003},
                    "voice": {"answer": "human", "press": ["1"]}, "understands": ["ko"]})
    await city.add({"id": "en", "languages": ["en"], "district": "11110",
                    "contacts": [{"type": "phone", "number": "+821055510002", "handset": "smartphone"}]},
                   {"phones": ["+821055510002"], "sms": {"outcome": "delivered"}})
    aid = await city.post_alert({
        "event": "Heat wave", "severity": "Severe",
        "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다."},
                    "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today."}},
        "audience": {"residents": ["fp", "en"]},
        "policy": {"channels": ["sms", "voice"], "step_timeouts": {"sms": 3, "voice": 20}},
    })
    await city.settled(aid)

    creates = [r for r in city.sim.requests
               if r["method"] == "POST" and r["path"].endswith(("/Messages.json", "/Calls.json"))]
    assert {r["path"].rsplit("/", 1)[1] for r in creates} == {"Messages.json", "Calls.json"}
    for request in creates:
        validate_form(spec_path(request["path"]), request["fields"])

    call = next(r for r in city.received("fp") if r["channel"] == "voice")
    assert call["heard"] and all(h["language"] == "ko-KR" for h in call["heard"] if "text" in h)
    assert call["pressed"][0]["digits"] == "1"
    path = await city.path(aid, "fp")
    assert path["confirmed_by"] == {"channel": "voice", "level": "acknowledged"}
