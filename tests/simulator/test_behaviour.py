"""Residents are found by any address the gateway uses; strangers get plain defaults."""

from __future__ import annotations

import orjson
import pytest

from simulator.behaviour import UNKNOWN, Behaviour, language_of, understands

GRANDMOTHER = {
    "resident": "r000001",
    "phones": ["+821012345678", "+82212345678"],
    "fcm_tokens": ["fcm-token-1"],
    "webpush_endpoints": ["http://127.0.0.1:9/wp/abc"],
    "postal": ["04524|서울 중구 세종대로 110"],
    "sms": {"outcome": "delivered", "error_code": None, "delay_s": 2.0, "reply": "1", "reply_after_s": 20.0},
    "voice": {"answer": "human", "ring_s": 8.0, "press": ["1"], "after_s": 0},
    "push": {"token_state": "valid", "ack": True, "ack_after_s": 15.0},
    "mail": {"outcome": "posted", "after_s": 3600},
    "understands": ["ko"],
}


def test_a_city_file_is_found_by_phone_token_endpoint_and_address(tmp_path):
    path = tmp_path / "city.ndjson"
    path.write_bytes(orjson.dumps(GRANDMOTHER) + b"\n\n" + orjson.dumps({"resident": "r000002"}) + b"\n")
    city = Behaviour.load(path)
    assert len(city) == 2
    for record in (
        city.by_phone("+821012345678"),
        city.by_phone("+82212345678"),
        city.by_fcm("fcm-token-1"),
        city.by_endpoint("http://127.0.0.1:9/wp/abc"),
        city.by_postal("04524", " 서울 중구 세종대로 110 "),
    ):
        assert record["resident"] == "r000001" and record["voice"]["press"] == ["1"]


def test_missing_sections_take_the_defaults():
    record = Behaviour([{"resident": "r2", "phones": ["+821000000002"], "sms": {"reply": "네"}}]).by_phone("+821000000002")
    assert record["sms"] == {**UNKNOWN["sms"], "reply": "네"}
    assert record["voice"]["answer"] == "human" and record["understands"] == []


def test_a_stranger_gets_delivered_sms_and_listens_without_pressing():
    city = Behaviour()
    stranger = city.by_phone("+821099999999")
    assert stranger["resident"] is None
    assert stranger["sms"]["outcome"] == "delivered" and stranger["sms"]["reply"] is None
    assert stranger["voice"]["answer"] == "human" and stranger["voice"]["press"] == []
    assert city.by_fcm("nobody")["push"]["ack"] is False
    assert city.by_postal("00000", "nowhere")["mail"]["outcome"] == "posted"


def test_replacing_a_resident_forgets_their_old_numbers():
    city = Behaviour([GRANDMOTHER])
    city.add({**GRANDMOTHER, "phones": ["+821055555555"]})
    assert city.by_phone("+821012345678")["resident"] is None
    assert city.by_phone("+821055555555")["resident"] == "r000001"
    assert len(city) == 1


def test_a_bad_record_leaves_the_city_as_it_was():
    city = Behaviour([GRANDMOTHER])
    with pytest.raises(ValueError):
        city.add_many([{"resident": "ok", "phones": ["+821011111111"]}, {"resident": "bad", "voice": {"answer": "maybe"}}])
    with pytest.raises(ValueError):
        city.add({"phones": ["+821022222222"]})
    assert len(city) == 1 and city.by_phone("+821011111111")["resident"] is None


@pytest.mark.parametrize(
    "text, language",
    [("폭염 경보", "ko"), ("熱中症に注意してください", "ja"), ("高温预警", "zh"), ("Heat warning", None), ("Cảnh báo", None)],
)
def test_the_script_tells_the_language(text, language):
    assert language_of(text) == language


def test_understanding_goes_by_primary_language():
    record = Behaviour([GRANDMOTHER]).by_resident("r000001")
    assert understands(record, "ko-KR") and understands(record, None)
    assert not understands(record, "en-US")
    assert understands(UNKNOWN, "en-US")
