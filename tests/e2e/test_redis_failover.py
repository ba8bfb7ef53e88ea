"""Redis's primary dies in the middle of an alert; every resident still ends.

A primary, a replica and three sentinels (tests/redis_sentinel.py) hold the
state and carry Celery's queues; the API, the pump and a real worker reach
them through GATEWAY_REDIS_URL=redis+sentinel://....  The primary is killed
with kill -9 while the SMS go out.  Replication is asynchronous, so the new
primary may lack the last writes before the kill: a step whose claim is lost
is sent again when its timer comes due, so a resident may get one text twice,
never none.  The test counts those duplicates and bounds them by the sends
of the window that could be lost.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from redis_sentinel import DOWN_AFTER_MS, SentinelGroup
from stackkit import SMS_FLOOD, sms_residents

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESIDENTS = 3_000
# What asynchronous replication can lose: the writes of about the last second
# (on loopback the replica is microseconds behind; over a city's network, more).
LOSS_WINDOW_S = 1.0


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    group = SentinelGroup(tmp_path_factory.mktemp("sentinels")).start()
    yield group
    group.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks, sentinels):
    s = stacks.start(tmp_path_factory.mktemp("gateway"), GATEWAY_REDIS_URL=sentinels.url)
    yield s
    stacks.stop(s)


async def test_the_primary_dies_mid_alert_and_every_resident_still_ends_in_a_final_state(city, sentinels):
    residents, behaviours = sms_residents(RESIDENTS, "s", "+821058")
    await city.import_ndjson(residents, behaviours)
    started = time.monotonic()
    aid = await city.post_alert(SMS_FLOOD)
    while len(city.sim.records) < RESIDENTS // 3:
        await asyncio.sleep(0.01)

    sentinels.kill_primary()
    killed_at = time.time()
    sent_at_kill = len(city.sim.records)
    failover_s = await asyncio.to_thread(sentinels.wait_for_failover)

    summary = await city.settled(aid, timeout=400)
    seconds = time.monotonic() - started
    duplicates = sum(city.sim.records.duplicates.values())
    # Sends that a lost write could make the gateway repeat: those in the loss
    # window before the kill and those already claimed when the election ran.
    exposed = sum(1 for r in city.sim.records
                  if killed_at - LOSS_WINDOW_S <= r["created_at"] <= killed_at + failover_s and not r["duplicate"])
    print(f"\nSentinel failover: {RESIDENTS} residents, {summary['terminal']} terminal, "
          f"{summary['deliveries'].get('confirmed', 0)} confirmed; primary killed after {sent_at_kill} sends; "
          f"new primary named in {failover_s:.1f} s (down-after {DOWN_AFTER_MS} ms); "
          f"duplicates {duplicates} (bound {exposed}); {seconds:.1f} s in all")

    assert summary["targeted"] == RESIDENTS
    assert summary["terminal"] == RESIDENTS
    assert summary["deliveries"]["confirmed"] == RESIDENTS
    assert {r["resident"] for r in city.sim.records} == {r["id"] for r in residents}
    assert duplicates <= exposed
    assert sentinels.primary_port() == sentinels.ports["replica"]
