"""Calls that find a busy line, no answer or a machine are tried again.

Busy and no answer retry with back-off inside the step's budget; an answering
machine gets the message left on it but never counts, and after the step's
tries the plan falls back to the next channel.  This module's stack waits
half a second before the first retry (a minute in production).
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks):
    s = stacks.start(tmp_path_factory.mktemp("voice-retries"), GATEWAY_VOICE_RETRY_BACKOFF_S="0.5")
    yield s
    stacks.stop(s)


def flood(audience: dict, **policy) -> dict:
    return {
        "event": "Flood", "severity": "Severe", "urgency": "Immediate",
        "content": {"ko": {"headline": "홍수 경보", "body": "하천이 범람하고 있습니다.", "instruction": "높은 곳으로 대피하세요."}},
        "audience": audience,
        "policy": {"step_timeouts": {"voice": 30, "sms": 10}, **policy},
    }


def landline(rid: str, number: str, needs=()) -> dict:
    doc = {"id": rid, "languages": ["ko"], "district": "11110",
           "contacts": [{"type": "phone", "number": number, "handset": "landline"}]}
    if needs:
        doc["needs"] = list(needs)
    return doc


async def calls_to(city, rid: str, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(calls := [r for r in city.received(rid) if r["channel"] == "voice"]) < count:
        assert time.monotonic() < deadline, f"{rid} got {len(calls)} calls, not {count}"
        await asyncio.sleep(0.01)
    return calls


async def test_a_busy_line_twice_then_an_answer_confirms_on_the_third_call(city):
    number = "+8227250101"
    await city.add(landline("b1", number), {"phones": [number], "voice": {"answer": "busy"}})
    aid = await city.post_alert(flood({"residents": ["b1"]}))
    await calls_to(city, "b1", 2)
    # The line is free when the third call comes.
    city.sim.behaviour.add_many([{"resident": "b1", "phones": [number], "voice": {"answer": "human", "press": ["1"]}}])
    await city.settled(aid, timeout=30)

    path = await city.path(aid, "b1")
    assert path["state"] == "confirmed"
    assert path["confirmed_by"] == {"channel": "voice", "level": "acknowledged"}
    attempts = path["attempts"]
    assert [a["attempt"] for a in attempts] == [0, 1, 2]
    assert [s.get("error_code") for s in attempts[0]["statuses"] if s["status"] == "failed"] == ["busy"]
    assert "acknowledged" in [s["status"] for s in attempts[2]["statuses"]]
    calls = city.received("b1")
    assert [c["status"] for c in calls] == ["busy", "busy", "completed"]
    assert calls[2]["pressed"][0]["digits"] == "1"


async def test_no_answer_is_tried_the_steps_number_of_times_then_reported(city):
    number = "+8227250102"
    await city.add(landline("n1", number), {"phones": [number], "voice": {"answer": "no-answer"}})
    aid = await city.post_alert(flood({"residents": ["n1"]}))
    await city.settled(aid, timeout=30)
    path = await city.path(aid, "n1")
    assert path["state"] == "unreachable"
    assert "after 3 attempts" in path["reasons"][0]["reason"]
    assert [c["status"] for c in city.received("n1")] == ["no-answer"] * 3
    # Twilio calls the gateway back once per call, when it ends: nothing in between moves a delivery.
    assert city.sim.stats["callbacks.sent"] == 3


async def test_a_machine_gets_the_message_three_times_then_the_plan_falls_back_to_sms(city):
    # Blind: voice comes before SMS in the plan.
    number = "+821077701234"
    await city.add({"id": "m1", "languages": ["ko"], "district": "11110", "needs": ["blind"],
                    "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]},
                   {"phones": [number], "voice": {"answer": "machine"}, "sms": {"outcome": "delivered", "reply": "1"}})
    aid = await city.post_alert(flood({"residents": ["m1"]}))
    await city.settled(aid, timeout=30)

    path = await city.path(aid, "m1")
    assert [step["channels"] for step in path["plan"]] == [["voice"], ["sms"]]
    assert path["confirmed_by"] == {"channel": "sms", "level": "acknowledged"}
    voice = [a for a in path["attempts"] if a["channel"] == "voice"]
    assert len(voice) == 3
    assert all(any(s.get("error_code") == "machine" for s in a["statuses"]) for a in voice)

    calls = [r for r in city.received("m1") if r["channel"] == "voice"]
    assert len(calls) == 3
    for call in calls:
        assert call["answered_by"].startswith("machine")
        # The message was left on the machine, in full.
        assert "하천이 범람하고 있습니다" in call["text"]
    assert [r["channel"] for r in city.received("m1")] == ["voice", "voice", "voice", "sms"]
