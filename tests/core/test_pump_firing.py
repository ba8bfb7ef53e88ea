"""The pump hands due timers to the workers: no faster than they take them,
shared fairly among alerts, and in slices that leave the API's event loop
(which the pump shares) free to answer an agency meanwhile."""

from __future__ import annotations

import asyncio
import time

import orjson

from gateway import keys
from gateway.egress import Egress
from gateway.fallback import turn_of
from gateway.pump import END_CHECK_S, RECHECK_S, STEPS_AHEAD, Pump
from gateway.transitions import now_ms


class Broker:
    """What the pump hands to the workers, queued in order; workers take from the front."""

    def __init__(self):
        self.tasks: list[tuple[str, list[str]]] = []
        self.taken: list[tuple[str, list[str]]] = []
        self.turns: dict[str, int] = {}  # the turn of each alert's last task

    async def steps_waiting(self) -> int:
        return len(self.tasks)

    def due(self, aid: str, members: list[str], turn: int) -> None:
        self.tasks.append((aid, members))
        self.turns[aid] = turn

    def close_open(self, aid: str, state: str) -> None:
        pass

    def take(self, count: int) -> None:
        self.taken += self.tasks[:count]
        del self.tasks[:count]


async def running(redis, aids: list[str], timers: int, due_in_ms: int) -> None:
    """Alerts still going, each with `timers` step deadlines `due_in_ms` from now."""
    deadline = now_ms() + due_in_ms
    pipe = redis.pipeline(transaction=False)
    for aid in aids:
        pipe.hset(keys.alert(aid), mapping={"status": "active", "targeted": timers, "fanned": 1,
                                            "created_ms": now_ms()})
        pipe.hset(keys.alert_counts(aid), mapping={"in_progress": timers})
        pipe.zadd(keys.alert_timers(aid), {f"r{i}|0|t": deadline for i in range(timers)})
        pipe.sadd(keys.ACTIVE_ALERTS, aid)
    await pipe.execute()


async def pass_until_idle(pump: Pump) -> None:
    while await pump.tick():
        pass


async def test_a_small_alerts_escalation_waits_behind_a_few_batches_not_a_large_alerts_backlog(redis):
    await running(redis, ["large"], 20_000, -1000)
    broker = Broker()
    pump = Pump(redis, broker, Egress())
    await pass_until_idle(pump)
    await running(redis, ["small"], 3, -1)
    broker.take(3)
    await pass_until_idle(pump)

    ahead = next(i for i, (aid, _) in enumerate(broker.tasks) if aid == "small")
    assert ahead < STEPS_AHEAD, ahead
    assert len(broker.tasks) <= STEPS_AHEAD + 1
    # The large alert's other timers wait in its set, in deadline order, each fired once.
    fired = [m for _, members in broker.taken + broker.tasks for m in members]
    large = [m for aid, members in broker.taken + broker.tasks if aid == "large" for m in members]
    assert len(large) == len(set(large))
    assert await redis.zcount(keys.alert_timers("large"), "-inf", now_ms()) == 20_000 - len(large)
    assert len(fired) < 20_000


async def test_an_alerts_escalations_go_to_the_workers_at_its_severitys_turn_even_after_an_update_raises_it(redis):
    water_cut = {"severity": "Moderate", "urgency": "Expected"}
    await running(redis, ["cut", "evacuate"], 2, -1)
    await redis.hset(keys.alert("cut"), mapping={"doc": orjson.dumps(water_cut), "version": 1})
    await redis.hset(keys.alert("evacuate"), "doc", orjson.dumps({"severity": "Extreme", "urgency": "Immediate"}))
    broker = Broker()
    pump = Pump(redis, broker, Egress())
    await pass_until_idle(pump)
    assert broker.turns == {"cut": turn_of(water_cut), "evacuate": 0}

    # The water turns out unsafe to drink: the agency raises the alert to Severe.
    await redis.hset(keys.alert("cut"), mapping={"doc": orjson.dumps({**water_cut, "severity": "Severe"}),
                                                 "version": 2})
    await asyncio.sleep(END_CHECK_S)
    await pass_until_idle(pump)  # its end check sees the new version
    await redis.zadd(keys.alert_timers("cut"), {"r9|1|t": now_ms() - 1})
    await asyncio.sleep(RECHECK_S)  # an alert with nothing due is looked at again this often
    await pass_until_idle(pump)
    assert broker.turns["cut"] == turn_of({"severity": "Severe"}) < turn_of(water_cut)


async def test_the_loop_gets_turns_throughout_a_pump_pass_over_two_thousand_running_alerts(redis):
    await running(redis, [f"busy{i}" for i in range(2000)], 1, 3_600_000)
    pump = Pump(redis, Broker(), Egress())
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
    assert await redis.scard(keys.ACTIVE_ALERTS) == 2000
    assert len(pump._next_due) == 2000
    # The pass is cut in slices the loop runs other work between, not held in
    # one piece (in one pipeline, the longest hold was a fifth of the pass).
    assert longest < took / 10, (longest, took)
