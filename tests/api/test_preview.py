"""An agency sees what a resident would get before it sends anything."""

from __future__ import annotations

import orjson
import pytest
from openapi_spec_validator import validate

from gateway import keys, samples
from gateway.agencies import create_agency
from tests.letter_fonts import needs_letter_fonts

pytestmark = pytest.mark.e2e

HEAT = samples.heat_wave()
GRANDMOTHER = {
    "name": "김순자", "languages": ["ko"], "district": "11110", "birth_year": 1938,
    "contacts": [{"type": "phone", "number": "010-5550-1234", "handset": "feature_phone"},
                 {"type": "phone", "number": "02-725-0001", "handset": "landline"}],
}


async def preview(city, body, key=None):
    headers = {"Authorization": f"Bearer {key or city.key}"}
    async with city.http.post(f"{city.api}/v1/alerts/preview", json=body, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), orjson.loads(await r.read())


def legs(result) -> dict:
    return {leg["channel"]: leg for step in result["steps"] for leg in step["legs"]}


async def test_a_feature_phone_grandmother_sees_korean_sms_then_a_slow_call_and_nothing_is_sent(city):
    status, _, result = await preview(city, {"alert": HEAT, "resident": GRANDMOTHER})
    assert status == 200, result
    assert result["language"] == "ko" and result["initial_state"] == "planned"
    assert [[leg["channel"] for leg in step["legs"]] for step in result["steps"]] == [["sms"], ["voice"], ["voice"]]
    sms = legs(result)["sms"]
    assert sms["contact"] == {"type": "phone", "handset": "feature_phone", "number": "+82******1234"}
    text = sms["preview"]
    assert text["encoding"] == "UCS-2" and 1 <= text["segments"] <= text["segment_budget"]
    assert "폭염 경보" in text["text"]
    assert text["link_included"] is False  # a feature phone opens no web page
    call = legs(result)["voice"]["preview"]
    assert call["slow_speech"] is True  # born in 1938
    assert 'language="ko-KR"' in call["twiml"] and "<Gather" in call["twiml"]
    assert "<Gather" not in call["machine_twiml"]
    # Nothing was stored or sent.
    assert await city.redis.zcard(keys.ALERTS) == 0
    assert len(city.sim.records) == 0


async def test_an_english_smartphone_resident_gets_a_gsm_sms_with_the_link(city):
    resident = {"languages": ["en"], "district": "11110",
                "contacts": [{"type": "phone", "number": "010-5550-9876", "handset": "smartphone"}]}
    status, _, result = await preview(city, {"alert": {**HEAT, "severity": "Moderate"}, "resident": resident})
    assert status == 200, result
    sms = legs(result)["sms"]["preview"]
    assert result["language"] == "en" and result["confirmation"] == "delivered"
    assert sms["encoding"] == "GSM-7" and sms["link_included"] is True
    assert f"{city.api}/m/" in sms["text"]


@needs_letter_fonts
async def test_an_app_user_sees_the_push_notification_and_the_large_print_letter_that_would_follow(city):
    resident = {"name": "Maria Santos", "languages": ["en"], "district": "11110", "needs": ["low_vision"],
                "contacts": [{"type": "fcm", "token": "fcm:maria:APA91b-sim-token-0123456789"},
                             {"type": "postal", "lines": ["12 Sejong-daero", "Jongno-gu, Seoul"], "postcode": "03154"}]}
    status, _, result = await preview(city, {"alert": HEAT, "resident": resident})
    assert status == 200, result
    assert [[leg["channel"] for leg in step["legs"]] for step in result["steps"]] == [["push"], ["mail"]]
    push = legs(result)["push"]["preview"]
    assert push["provider"] == "fcm" and "Heat wave warning" in push["title"]
    assert "Avoid outdoor activity" in push["body"] and push["data"]["lang"] == "en"
    assert push["data"]["url"].endswith("/m/" + push["data"]["ack"])  # the page the tap opens
    assert 0 < push["payload_bytes"] <= 4096 and push["ttl_s"] > 0
    letter = legs(result)["mail"]["preview"]
    assert letter["layout"] == "large_print" and letter["pages"] >= 1 and letter["language"] == "en"
    assert len(city.sim.records) == 0 and not list((city.stack.settings.data_dir / "mail").rglob("*.pdf"))


async def test_a_registered_resident_is_previewed_by_id_with_their_needs(city):
    await city.add({"id": "blind1", "languages": ["ko"], "district": "11110", "needs": ["blind"],
                    "contacts": [{"type": "phone", "number": "010-5550-4321", "handset": "feature_phone"}]})
    status, _, result = await preview(city, {"alert": HEAT, "resident_id": "blind1"})
    assert status == 200, result
    assert result["resident"] == "blind1"
    # Blind: the call comes before the text.
    assert [step["legs"][0]["channel"] for step in result["steps"]] == ["voice", "sms"]


async def test_every_bad_field_is_named_as_problem_json(city):
    body = {"alert": {"event": "Heat", "severity": "Hot", "content": {"ko": {"headline": "폭염"}}, "colour": "red"},
            "resident": {"languages": ["ko"], "district": "11110",
                         "contacts": [{"type": "phone", "number": "12", "handset": "feature_phone"}]},
            "resident_id": "r1"}
    status, ctype, problem = await preview(city, body)
    assert status == 422 and ctype.startswith("application/problem+json")
    fields = {e["field"] for e in problem["errors"]}
    assert {"/alert/severity", "/alert/content/ko/body", "/alert/colour"} <= fields

    status, _, problem = await preview(city, {"alert": HEAT, "resident": GRANDMOTHER, "resident_id": "r1"})
    assert status == 422 and problem["errors"][0]["field"] == "/resident"

    status, _, problem = await preview(city, {"alert": HEAT, "resident_id": "nobody"})
    assert status == 422 and problem["errors"] == [{"field": "/resident_id", "detail": "no such resident in your agency's area"}]

    bad_number = {**GRANDMOTHER, "contacts": [{"type": "phone", "number": "0000", "handset": "landline"}]}
    status, _, problem = await preview(city, {"alert": HEAT, "resident": bad_number})
    assert status == 422 and problem["errors"][0]["field"] == "/resident/contacts/0/number"

    bad_option = {**HEAT, "response_options": [{"code": "1", "label": {"ko": "네"}}]}
    status, _, problem = await preview(city, {"alert": bad_option, "resident": GRANDMOTHER})
    assert status == 422 and problem["errors"][0]["field"] == "/alert/response_options/0/code"


async def test_a_key_that_cannot_post_alerts_cannot_preview_them(city):
    _, reader = await create_agency(city.redis, "Statistics office", scopes=["alerts:read"])
    status, _, problem = await preview(city, {"alert": HEAT, "resident": GRANDMOTHER}, key=reader)
    assert status == 403 and "alerts:write" in problem["detail"]


async def test_the_preview_is_in_the_openapi_document(city):
    spec = await city.get("/v1/openapi.json")
    validate(spec)
    op = spec["paths"]["/v1/alerts/preview"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"alert", "resident", "resident_id"}
    assert "audience" not in schema["properties"]["alert"]["required"]
