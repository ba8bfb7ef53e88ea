"""Paper mail over the real stack: letters rendered, batched into the simulated
print house's drop box, and confirmed by its answer."""

from __future__ import annotations

import pytest

from tests.letter_fonts import needs_letter_fonts

pytestmark = [pytest.mark.e2e, needs_letter_fonts]

TIMEOUTS = {"push": 5, "sms": 5, "voice": 5, "mail": 30}
HOME = ("03151", "세종대로 209, 101동 1203호")
MOVED_AWAY = ("06236", "테헤란로 152")


def alert(*rids: str, **extra) -> dict:
    return {
        "event": "Heat wave", "severity": "Severe", "urgency": "Immediate",
        "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다. 야외 활동을 피하세요.",
                           "instruction": "물을 자주 드세요. 무더위 쉼터를 이용하세요."},
                    "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today."}},
        "audience": {"residents": list(rids)},
        "policy": {"step_timeouts": TIMEOUTS},
        **extra,
    }


def resident(rid: str, address: tuple[str, str], needs=()) -> dict:
    doc = {"id": rid, "name": f"김{rid}", "languages": ["ko"], "district": "11110",
           "contacts": [{"type": "postal", "lines": [address[1], "서울특별시 종로구"], "postcode": address[0],
                         "country": "KR"}]}
    if needs:
        doc["needs"] = list(needs)
    return doc


async def test_resident_without_a_phone_gets_a_letter_confirmed_when_posted(city):
    await city.add(resident("m1", HOME, needs=("low_vision",)),
                   {"postal": ["|".join(HOME)], "mail": {"outcome": "posted", "after_s": 10}})
    aid = await city.post_alert(alert("m1"))
    await city.settled(aid, timeout=40)
    path = await city.path(aid, "m1")
    assert path["state"] == "confirmed"
    # Posted is as far as paper can prove, and it closes even an alert that asks for acknowledgement.
    assert path["confirmed_by"] == {"channel": "mail", "level": "posted"}
    assert [s["status"] for s in path["attempts"][0]["statuses"]][-3:] == ["queued", "sent", "posted"]
    letters = city.received("m1")
    assert [(r["channel"], r["status"]) for r in letters] == [("mail", "posted")]
    # Large print for low vision runs over onto a second page.
    assert letters[0]["pages"] >= 2


async def test_returned_letter_leaves_the_resident_unreachable_and_the_address_stale(city):
    await city.add(resident("m2", MOVED_AWAY), {"postal": ["|".join(MOVED_AWAY)],
                                                "mail": {"outcome": "returned", "after_s": 10}})
    aid = await city.post_alert(alert("m2"))
    await city.settled(aid, timeout=40)
    path = await city.path(aid, "m2")
    assert path["state"] == "unreachable"
    assert path["reasons"] == [{"step": 0, "channel": "mail", "reason": "failed (returned)"}]
    assert (await city.get("/v1/residents/m2"))["dead_contacts"] == [0]


async def test_letters_of_one_alert_share_a_batch(city):
    homes = [(f"0{3100 + i}", f"종로 {i + 1}") for i in range(5)]
    for i, home in enumerate(homes):
        await city.add(resident(f"b{i}", home), {"postal": ["|".join(home)], "mail": {"after_s": 10}})
    aid = await city.post_alert(alert(*[f"b{i}" for i in range(5)]))
    summary = await city.settled(aid, timeout=40)
    assert summary["deliveries"]["confirmed"] == 5
    batches = {city.received(f"b{i}")[0]["batch"] for i in range(5)}
    assert len(batches) == 1
