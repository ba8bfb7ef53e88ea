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

RESIDENTS = 5_000
# Texts a second, as a carrier paces one sender.  The simulator shares one
# event loop with the API in this test: unpaced, the restarted worker sent
# ~300 texts/s, and on a busy machine the simulator's receipt webhooks timed
# out (15 s, as Twilio's) and were given up (its stats: callbacks.failed.TimeoutError),
# so residents who got the text were reported unreachable.  bench/chaos.py
# kills a worker at full speed with the simulator in a process of its own.
SMS_PER_S = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks):
    s = stacks.start(tmp_path_factory.mktemp("gateway"),
                     GATEWAY_SMS_RATE_PER_SENDER=str(SMS_PER_S), GATEWAY_SMS_RATE_PER_PROVIDER=str(SMS_PER_S))
    yield s
    stacks.stop(s)


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
