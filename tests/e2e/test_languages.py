"""Languages beyond the five the gateway writes its own words in, over the real stack."""

from __future__ import annotations

import pytest
from stackkit import heat_wave

from channels.notices import words_for
from gateway.samples import phone, resident

pytestmark = pytest.mark.e2e

THAI = {"headline": "เตือนภัยคลื่นความร้อน", "body": "วันนี้อุณหภูมิสูงถึง 38 องศา", "instruction": "ดื่มน้ำบ่อยๆ"}


async def test_a_resident_whose_language_the_alert_lacks_gets_the_fallback_and_is_told_why_in_their_own(city):
    await city.add(resident("th1", phone("+821055550001", "feature_phone"), languages=("th",)),
                   {"phones": ["+821055550001"], "sms": {"outcome": "delivered"}})
    aid = await city.post_alert(heat_wave({"residents": ["th1"]}))  # Korean and English only
    await city.settled(aid)
    text = [r for r in city.received("th1") if r["channel"] == "sms"][0]["text"]
    assert text.splitlines()[0] == words_for("th")["not_in_language"]
    assert "폭염 경보" in text  # the alert's first language is its fallback


async def test_a_call_is_read_in_any_language_the_agency_wrote_that_has_a_voice(city):
    await city.add(resident("th2", phone("+8227550002", "landline"), languages=("th", "ko")),
                   {"phones": ["+8227550002"], "voice": {"answer": "human", "press": ["1"]}})
    alert = heat_wave({"residents": ["th2"]})
    alert["content"]["th"] = THAI
    aid = await city.post_alert(alert)
    await city.settled(aid, timeout=60)
    assert (await city.path(aid, "th2"))["confirmed_by"]["channel"] == "voice"
    call = [r for r in city.received("th2") if r["channel"] == "voice"][0]
    heard = {h["language"]: h["text"] for h in call["heard"] if "text" in h}
    assert THAI["headline"] in heard["th-TH"]
    assert "ko-KR" not in heard  # read in Thai, the call's own words in English
