"""A worker killed with `kill -9` in the middle of a fan-out loses nobody.

Its Celery batch comes back (acks_late, visibility timeout), the claim in
transitions.lua skips what was already sent, and a claim whose sender died
is taken over when its lease ends. Duplicates can only come from sends that
were in flight at the kill: we count those and print both figures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from stackkit import in_flight

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESIDENTS = 10_000


# Known failure on this session's fresh install (celery/kombu 5.7, redis-py 8.1), on
# 0c1c85b as well as now: the killed worker's batches are not run again, so about
# 1,750-1,900 of 10,000 residents wait for their 240 s SMS step to time out.
# To be fixed first (see the session notes on issue 12); not strict, so a fix shows.
@pytest.mark.xfail(reason="killed worker's batches are not redelivered on today's celery/kombu", strict=False)
async def test_killing_a_worker_mid_fanout_loses_no_resident(city):
    residents, behaviours = [], []
    for i in range(RESIDENTS):
        number = f"+821056{i:06d}"
        residents.append({"id": f"k{i:05d}", "languages": ["ko"], "district": "11110",
                          "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]})
        behaviours.append({"resident": f"k{i:05d}", "phones": [number], "sms": {"outcome": "delivered"}})
    await city.import_ndjson(residents, behaviours)
    aid = await city.post_alert({
        "event": "Water cut", "severity": "Moderate",
        "content": {"ko": {"headline": "단수 안내", "body": "내일 09시부터 12시까지 단수됩니다."}},
        "audience": {"districts": ["11110"]},
        "policy": {"channels": ["sms"], "step_timeouts": {"sms": 240}},
    })
    while len(city.sim.records) < RESIDENTS // 4:
        await asyncio.sleep(0.02)

    worker = city.stack.worker
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    claimed = await in_flight(city.redis, aid, [f"k{i:05d}" for i in range(RESIDENTS)])
    sent_at_kill = len(city.sim.records)
    city.stack.restart_worker()

    started = time.monotonic()
    summary = await city.settled(aid, timeout=300)
    duplicates = sum(city.sim.records.duplicates.values())
    print(f"\nkill -9 after {sent_at_kill} of {RESIDENTS} sends; in flight at the kill: {claimed}; "
          f"duplicates: {duplicates}; recovered in {time.monotonic() - started:.1f} s")

    assert summary["targeted"] == RESIDENTS
    assert summary["terminal"] == RESIDENTS
    assert summary["deliveries"]["confirmed"] == RESIDENTS
    residents_reached = {r["resident"] for r in city.sim.records}
    assert len(residents_reached) == RESIDENTS
    assert duplicates <= claimed
