"""Retry in place: the agency reopens an alert's unreachable, and they are
reached in the same alert, over the real stack."""

from __future__ import annotations

import asyncio

import pytest
from stackkit import heat_wave

from gateway.samples import phone, resident

pytestmark = pytest.mark.e2e

SMS_FAILS = {"sms": {"outcome": "failed", "error_code": 30008}}


async def reopen(city, aid: str, body: dict | None = None):
    async with city.http.post(f"{city.api}/v1/alerts/{aid}/reopen", json=body or {}, headers=city.auth) as r:
        return r.status, await r.json(content_type=None)


async def finished(city, aid: str) -> dict:
    """Settled, and marked done by the pump: a reopen must bring it back."""
    await city.settled(aid)
    for _ in range(100):
        summary = await city.get(f"/v1/alerts/{aid}")
        if summary["status"] == "done":
            return summary
        await asyncio.sleep(0.1)
    raise AssertionError(f"the alert did not end: {summary}")


async def test_residents_unreachable_by_sms_are_reached_by_voice_after_reopen_in_the_same_alert(city):
    for i, answer in ((1, "human"), (2, "human"), (3, "busy")):
        number = f"+82105550010{i}"
        await city.add(resident(f"so{i}", phone(number, "feature_phone")),
                       {"phones": [number], **SMS_FAILS, "voice": {"answer": answer, "press": ["1"]}})
    aid = await city.post_alert(heat_wave({"residents": ["so1", "so2", "so3"]}, policy={
        "channels": ["sms"], "step_timeouts": {"sms": 2, "voice": 6}, "max_attempts_per_step": 1}))
    before = await finished(city, aid)
    assert before["deliveries"]["unreachable"] == 3
    status, body = await reopen(city, aid, {"channels": ["voice"]})
    assert status == 202 and body["reopened"] == 3 and body["nothing_new"] == 0
    assert body["targeted"] == 3 and body["deliveries"]["in_progress"] == 3
    # A double click sends nothing twice.
    status, again = await reopen(city, aid, {"channels": ["voice"]})
    assert status == 202 and again["reopened"] == 0
    after = await city.settled(aid, timeout=90)
    assert after["id"] == aid and after["targeted"] == 3
    assert (after["deliveries"]["confirmed"], after["deliveries"]["unreachable"]) == (2, 1)
    assert after["channels"]["voice"]["confirmed_by"] == 2
    for rid in ("so1", "so2"):
        path = await city.path(aid, rid)
        assert path["confirmed_by"]["channel"] == "voice"
        assert [s["channels"] for s in path["plan"]] == [["sms"], ["voice"]]
        assert [r["channel"] for r in city.received(rid)] == ["sms", "voice"]


async def test_a_reopen_names_the_channel_it_cannot_use_and_changes_nothing(city):
    await city.add(resident("so4", phone("+821055500104", "feature_phone")), {"phones": ["+821055500104"], **SMS_FAILS})
    aid = await city.post_alert(heat_wave({"residents": ["so4"]}, policy={"channels": ["sms"],
                                                                          "step_timeouts": {"sms": 2}}))
    await city.settled(aid)
    status, body = await reopen(city, aid, {"channels": ["fax"], "loud": True})
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {"/channels/0", "/loud"}
    async with city.http.post(f"{city.api}/v1/alerts/{aid}/cancel", headers=city.auth) as r:
        assert r.status == 202
    status, body = await reopen(city, aid, {"channels": ["voice"]})
    assert status == 409
    assert (await city.path(aid, "so4"))["state"] == "unreachable"
