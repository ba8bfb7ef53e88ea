"""Python side of `transitions.lua`: one method per operation.

Every operation takes many deliveries of one alert, a few dozen per script
call, and queues its calls on the caller's pipeline, so a batch costs one
round trip; the script is loaded once per client (EVALSHA afterwards).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson

from . import keys

LUA = (Path(__file__).with_name("transitions.lua")).read_text()
# transitions.lua's rank of `delivered`: at or above it an attempt has its receipt.
RANK_DELIVERED = 4
TERMINAL = frozenset({"confirmed", "unreachable", "cancelled", "expired", "opted_out"})
STATES = ("planned", "in_progress", "confirmed", "unreachable", "cancelled", "expired", "opted_out")
# A claimed send that has not reported back in this long is taken over.
CLAIM_LEASE_MS = 30_000
# Deliveries per call of a batch op (Transitions._queue).
LUA_CHUNK = 50


def now_ms() -> int:
    """This process's clock: for records and caches. Timers are set and judged by
    Redis's clock (transitions.lua, the pump), so a process whose clock is off
    fires none early."""
    return int(time.time() * 1000)


class Transitions:
    def __init__(self, redis):
        self.redis = redis
        self.script = redis.register_script(LUA)

    async def _run(self, aid: str, args: list, client=None):
        return await self.script(keys=[keys.alert(aid)], args=args, client=client)

    async def plan(self, aid: str, level: int, max_attempts: int, rows: Iterable[tuple[str, int, list, str]], *,
                   claim: bool = False) -> list[tuple[str, bytes]]:
        """rows: (resident id, sequence, plan steps, initial state).  With `claim`,
        the new `planned` deliveries are claimed for their first send at once:
        returns (resident id, legs JSON) of each so claimed."""
        pipe = self.redis.pipeline(transaction=False)
        queued = await self._queue(pipe, aid, ["plan", level, max_attempts, CLAIM_LEASE_MS if claim else 0],
                                   [[rid, seq, orjson.dumps(steps), state] for rid, seq, steps, state in rows])
        results = await pipe.execute()
        return [(text(rid), legs) for _, claimed in results[queued.start:queued.end] for rid, legs in claimed]

    # The methods below queue calls for many deliveries of one alert onto a
    # pipeline; after it runs, `Replies.of(results)` gives a reply per delivery.
    async def claim(self, pipe, aid: str, items: Iterable[tuple[str, int, int]],
                    lease_ms: int = CLAIM_LEASE_MS) -> "Replies":
        """items: (resident id, step, attempt). Reply per item: [b"ok", legs JSON] or [b"skip"] or [state]."""
        return await self._queue(pipe, aid, ["claim", lease_ms], [[rid, k, n] for rid, k, n in items])

    async def event(self, pipe, aid: str, events: Iterable["Event"]) -> "Replies":
        now = now_ms()
        return await self._queue(pipe, aid, ["event"], [
            [e.rid, e.k, e.n, e.leg, e.status, int(e.permanent), e.provider, e.ref or "", e.code or "",
             e.at_ms or now, e.channel, e.backoff_ms] for e in events])

    async def timer(self, pipe, aid: str, members: Iterable[str]) -> "Replies":
        """A step a timer says to send is claimed in the same call: its reply is
        [b"ok", legs JSON, step, attempt]; else the state or b"noop"."""
        return await self._queue(pipe, aid, ["timer", CLAIM_LEASE_MS], [[m] for m in members])

    async def reopen(self, pipe, aid: str, items: Iterable[tuple[str, list]], who: str) -> "Replies":
        """items: (resident id, steps to append).  Reply per item: b"reopened:<step>",
        b"noop" (not unreachable: reopened already, or reached) or b"closed" (the alert ended)."""
        return await self._queue(pipe, aid, ["reopen", CLAIM_LEASE_MS, who],
                                 [[rid, orjson.dumps(steps)] for rid, steps in items])

    async def close(self, pipe, aid: str, rids: Iterable[str], state: str) -> "Replies":
        return await self._queue(pipe, aid, ["close", state], [[rid] for rid in rids])

    async def _queue(self, pipe, aid: str, head: list, items: list[list]) -> "Replies":
        # A few dozen deliveries a call: Redis serves other clients (the API
        # accepting an alert) between calls, not after a whole batch.
        start = len(pipe)
        for i in range(0, len(items), LUA_CHUNK):
            args = list(head)
            for item in items[i:i + LUA_CHUNK]:
                args += item
            await self._run(aid, args, pipe)
        return Replies(start, len(pipe))


@dataclass(slots=True)
class Replies:
    """Where one batch op's calls sit in a pipeline's results."""

    start: int
    end: int

    def of(self, results: list) -> list:
        return [reply for call in results[self.start:self.end] for reply in call]


@dataclass(slots=True)
class Event:
    """What a provider (or the resident) said about one leg of an attempt."""

    rid: str
    k: int
    n: int
    leg: int
    status: str
    permanent: bool
    provider: str
    ref: str | None
    code: str | None
    channel: str
    backoff_ms: int = 0
    at_ms: int | None = None


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
