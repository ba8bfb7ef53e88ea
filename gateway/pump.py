"""The pump: moves due timers to the workers, ends expired and finished alerts.

Timers live in a sorted set per alert scored by deadline, not in Celery
countdowns (Celery on Redis redelivers long countdowns and keeps them in
worker memory).  A popped timer is not deleted but pushed a lease ahead, so
a timer whose batch is lost comes due again; the transition removes it.
One pump leads at a time, by a lease in Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import orjson

from . import keys, transitions
from .callbacks import Courier
from .egress import Egress
from .fallback import turn_of
from .tasks import batches
from .transitions import STATES, Transitions, now_ms, text

log = logging.getLogger("gateway.pump")

TIMER_LEASE_MS = 60_000
LEADER_LEASE_MS = 5_000
STUCK_PLANNING_MS = 30_000
# How often the pump looks whether an alert has ended (done, expired).
END_CHECK_S = 0.5

# An alert whose next timer is far off is still looked at this often: a
# worker may have added an earlier one (a retry) since.
RECHECK_S = 0.5

# Step tasks the pump lets wait for the workers, at most.  Timers beyond that
# stay due in their alerts' sets, in deadline order, and each pass shares the
# room among the alerts that have some: a small alert's escalation does not
# queue behind a large alert's hundred thousand, and a timer is not fired
# again (TIMER_LEASE_MS) while its first task still waits in the broker.
STEPS_AHEAD = 10

# The pump shares the API's event loop: each round trip carries this many
# alerts, so an agency's request waits for a slice, not for every running
# alert (a thousand read in one pipeline held the loop for tens of ms).
ALERTS_PER_TRIP = 50

# What the end check reads of each alert (Pump._end_one).
END_FIELDS = ("status", "expires_ms", "targeted", "fanned", "created_ms", "fanout_retry_ms", "version")


class Pump:
    def __init__(self, redis, dispatch, egress: Egress, *, batch_size: int = 200, tick_s: float = 0.1):
        self.redis = redis
        self.dispatch = dispatch
        self.batch_size = batch_size
        self.tick_s = tick_s
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.t = Transitions(redis)
        # Agency callbacks go out from the leader too: one sender keeps them in order.
        self.callbacks = Courier(redis, egress)
        self._checked: dict[str, float] = {}
        # Per alert: (when its earliest timer is due, ms; when last looked at, monotonic s).
        self._next_due: dict[str, tuple[float, float]] = {}
        # Per alert: (its version, its turn at the workers); an update may change the severity.
        self._turns: dict[str, tuple[str | None, int]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.lead() and await self.tick()
            except Exception:
                log.exception("pump tick failed")
                busy = False
            if not busy:
                try:
                    await asyncio.wait_for(stop.wait(), self.tick_s)
                except asyncio.TimeoutError:
                    pass
        await self.callbacks.close()

    async def lead(self) -> bool:
        return await transitions.lead(self.redis, keys.PUMP_LEADER, self.me, LEADER_LEASE_MS)

    async def tick(self) -> bool:
        """One pass over the active alerts; True if there is more to do at once.

        Round trips of ALERTS_PER_TRIP pop the due timers of every alert that
        has one due (or was not looked at for RECHECK_S), more read the alerts
        whose end is due for a look (at most every END_CHECK_S each): the
        pump's cost must not grow with a round trip per active alert.
        """
        active = [text(a) for a in await self.redis.smembers(keys.ACTIVE_ALERTS)]
        more = await self._fire(active)
        for part in slices([aid for aid in active if self._end_check_due(aid)]):
            await self._end_if_over(part)
        await self.callbacks.tick()
        return more

    async def _fire(self, active: list[str]) -> bool:
        """Due timers to the workers, as many as STEPS_AHEAD leaves room for,
        shared among the alerts; True if an alert filled its share."""
        room = (STEPS_AHEAD - await self.dispatch.steps_waiting()) * self.batch_size
        if room <= 0:
            return False
        now, clock = now_ms(), time.monotonic()
        # Only alerts with a timer due, or not looked at for RECHECK_S (by this
        # process's clock: off, it only looks more often, or up to RECHECK_S late).
        aids = [aid for aid in active
                if self._next_due.get(aid, (0, 0.0))[0] <= now or clock - self._next_due[aid][1] >= RECHECK_S]
        due_before = sum(1 for aid in aids if self._next_due.get(aid, (0, 0.0))[0] <= now)
        share = max(self.batch_size, room // max(1, due_before))
        await self._learn_turns(aids)
        more = False
        for part in slices(aids):
            pipe = self.redis.pipeline(transaction=False)
            for aid in part:
                transitions.due_timers(pipe, aid, share, TIMER_LEASE_MS)
            for aid, (due, first) in zip(part, await pipe.execute()):
                for batch in batches([text(m) for m in due], self.batch_size):
                    self.dispatch.due(aid, batch, self._turns[aid][1])
                more |= len(due) == share
                self._next_due[aid] = (float(first) if first is not None else float("inf"), clock)
        return more

    async def _learn_turns(self, aids: list[str]) -> None:
        """The turns of alerts not seen yet (or updated since), read once each."""
        new = [aid for aid in aids if aid not in self._turns]
        for part in slices(new):
            pipe = self.redis.pipeline(transaction=False)
            for aid in part:
                pipe.hmget(keys.alert(aid), "doc", "version")
            for aid, (doc, version) in zip(part, await pipe.execute()):
                self._turns[aid] = (text(version) if version is not None else None,
                                    turn_of(orjson.loads(doc) if doc is not None else {}))

    def _forget(self, aid: str) -> None:
        self._checked.pop(aid, None)
        self._next_due.pop(aid, None)
        self._turns.pop(aid, None)

    def _end_check_due(self, aid: str) -> bool:
        now = time.monotonic()
        if now - self._checked.get(aid, 0.0) < END_CHECK_S:
            return False
        self._checked[aid] = now
        return True

    async def _end_if_over(self, aids: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        # Expiry and a stuck fan-out are judged by Redis's clock too.
        pipe.time()
        for aid in aids:
            pipe.hmget(keys.alert(aid), *END_FIELDS)
            pipe.hmget(keys.alert_counts(aid), *STATES)
        (seconds, micros), *rows = await pipe.execute()
        now = seconds * 1000 + micros // 1000
        for aid, meta, counts in zip(aids, rows[::2], rows[1::2]):
            await self._end_one(aid, meta, counts, now)

    async def _end_one(self, aid: str, meta: list, counts: list, now: int) -> None:
        status, expires, targeted, fanned, created, retried, version = (
            text(v) if v is not None else None for v in meta)
        if status is None:
            await self.redis.srem(keys.ACTIVE_ALERTS, aid)
            self._forget(aid)
            return
        if self._turns.get(aid, (version,))[0] != version:
            del self._turns[aid]
        if status == "planning" and now - int(retried or created) > _retry_wait(int(created), retried):
            # Accepted but never fanned out (broker down at the time): try again.
            # A plain write: the leader's own retry clock, read by nobody with the status.
            await self.redis.hset(keys.alert(aid), "fanout_retry_ms", now)
            await self._learn_turns([aid])
            self.dispatch.fan_out(aid, self._turns[aid][1])
            return
        if status in ("planning", "active") and expires and 0 < int(expires) <= now:
            if await self.t.end_alert(aid, "expired"):
                self.dispatch.close_open(aid, "expired")
            return
        if not fanned and status != "cancelled":
            return
        by_state = dict(zip(STATES, (int(c or 0) for c in counts)))
        open_ = by_state["planned"] + by_state["in_progress"]
        planned = sum(by_state.values())
        if open_ == 0 and planned >= int(targeted or 0):
            if status in ("planning", "active"):
                await self.t.end_alert(aid, "done")
            await self.redis.srem(keys.ACTIVE_ALERTS, aid)
            self._forget(aid)


def slices(aids: list[str]) -> list[list[str]]:
    return [aids[i:i + ALERTS_PER_TRIP] for i in range(0, len(aids), ALERTS_PER_TRIP)]


def _retry_wait(created: int, retried: str | None) -> int:
    """How long a fan-out not yet begun is left before it is handed over again:
    STUCK_PLANNING_MS, then as long as it had waited already (doubling).  Its
    task may only be queued behind minutes of work: each alert handed over
    every 30 s put 1,000 needless tasks in the queue every 30 s (a 100,000
    fan-out with 1,000 small alerts posted during it)."""
    return max(STUCK_PLANNING_MS, int(retried) - created if retried else 0)
