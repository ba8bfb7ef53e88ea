"""The pump runs on the API's event loop: a pass over many running alerts
leaves the loop free often enough for an agency's alert to be answered."""

from __future__ import annotations

import asyncio
import time

from gateway import keys
from gateway.egress import Egress
from gateway.pump import Pump
from gateway.transitions import now_ms

RUNNING_ALERTS = 2000


class Published:
    def due(self, aid, members):
        pass

    def close_open(self, aid, state):
        pass


async def running(redis, count: int) -> None:
    """Alerts still going (a delivery in progress, its deadline an hour off)."""
    pipe = redis.pipeline(transaction=False)
    for i in range(count):
        aid = f"busy{i}"
        pipe.hset(keys.alert(aid), mapping={"status": "active", "targeted": 1, "fanned": 1, "created_ms": now_ms()})
        pipe.hset(keys.alert_counts(aid), mapping={"in_progress": 1})
        pipe.zadd(keys.alert_timers(aid), {"r1|0|t": now_ms() + 3_600_000})
        pipe.sadd(keys.ACTIVE_ALERTS, aid)
    await pipe.execute()


async def test_the_loop_gets_turns_throughout_a_pump_pass_over_two_thousand_running_alerts(redis):
    await running(redis, RUNNING_ALERTS)
    pump = Pump(redis, Published(), Egress())
    turns: list[float] = []
    done = asyncio.Event()

    async def other_work():
        while not done.is_set():
            turns.append(time.perf_counter())
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    began = time.perf_counter()
    await pump.tick()
    took = time.perf_counter() - began
    done.set()
    await other
    during = [t for t in turns if t >= began]
    longest = max(b - a for a, b in zip([began, *during], [*during, began + took]))
    # Every alert was looked at in this pass (due timers and end), none ended.
    assert await redis.scard(keys.ACTIVE_ALERTS) == RUNNING_ALERTS
    assert len(pump._next_due) == RUNNING_ALERTS
    # The pass is cut in slices the loop runs other work between, not held in
    # one piece (in one pipeline, the longest hold was a fifth of the pass).
    assert longest < took / 10, (longest, took)
