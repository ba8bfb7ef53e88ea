"""Calls wait for the provider's pace, and none is placed twice for it.

Twilio takes calls from one number a few a second; when hundreds come due at
once, the last wait minutes for their slot. A claimed send that has not
reported back within its 30 s lease is taken over as abandoned (its worker
killed mid-call), so every call that waited longer than that for its slot
was claimed again by another worker process and placed twice. A worker now
renews the claims of the sends it still has on their way (gateway/engine.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RATE = 2  # calls a second, from the account and from the number
RESIDENTS = 80  # the last call waits about 40 s for its slot


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks):
    s = stacks.start(tmp_path_factory.mktemp("paced-calls"), GATEWAY_VOICE_CPS_PER_SENDER=str(RATE),
                     GATEWAY_VOICE_CPS_PER_PROVIDER=str(RATE))
    yield s
    stacks.stop(s)


async def test_calls_that_wait_longer_than_their_claim_lease_for_a_slot_are_each_placed_once(city):
    residents = [{"id": f"p{i:03d}", "languages": ["ko"], "district": "11110",
                  "contacts": [{"type": "phone", "number": f"+8227{i:06d}", "handset": "landline"}]}
                 for i in range(RESIDENTS)]
    await city.import_ndjson(residents, [
        {"resident": r["id"], "phones": [r["contacts"][0]["number"]], "voice": {"answer": "human", "press": ["1"]}}
        for r in residents])
    posted = time.monotonic()
    aid = await city.post_alert({
        "event": "Flood", "severity": "Severe", "urgency": "Immediate",
        "content": {"ko": {"headline": "홍수 경보", "body": "하천이 범람하고 있습니다."}},
        "audience": {"districts": ["11110"]}, "policy": {"step_timeouts": {"voice": 120}}})
    summary = await city.settled(aid, timeout=180)
    # A call taken over went to the back of the queue: by now it would have been placed.
    await asyncio.sleep(max(0.0, posted + 2 * RESIDENTS / RATE + 5 - time.monotonic()))
    calls = Counter(rec["resident"] for r in residents for rec in city.received(r["id"]) if rec["channel"] == "voice")
    assert summary["deliveries"]["confirmed"] == RESIDENTS
    assert {rid: n for rid, n in calls.items() if n > 1} == {}
    assert len(calls) == RESIDENTS
