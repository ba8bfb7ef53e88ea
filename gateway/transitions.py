"""Python side of `transitions.lua`: one method per operation.

Every method takes an optional pipeline so a batch of deliveries costs one
round trip; the script is loaded once per client (EVALSHA afterwards).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from . import keys

LUA = (Path(__file__).with_name("transitions.lua")).read_text()
TERMINAL = frozenset({"confirmed", "unreachable", "cancelled", "expired", "opted_out"})
STATES = ("planned", "in_progress", "confirmed", "unreachable", "cancelled", "expired", "opted_out")
# A claimed send that has not reported back in this long is taken over.
CLAIM_LEASE_MS = 30_000


def now_ms() -> int:
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
        args: list[Any] = ["plan", now_ms(), level, max_attempts, CLAIM_LEASE_MS if claim else 0]
        for rid, seq, steps, state in rows:
            args += [rid, seq, orjson.dumps(steps), state]
        _, claimed = await self._run(aid, args)
        return [(text(rid), legs) for rid, legs in claimed]

    # The methods below take many deliveries of one alert and queue one call
    # onto a pipeline; its reply is a list, a reply per delivery, in order.
    async def claim(self, pipe, aid: str, items: Iterable[tuple[str, int, int]], lease_ms: int = CLAIM_LEASE_MS):
        """items: (resident id, step, attempt). Reply per item: [b"ok", legs JSON] or [b"skip"] or [state]."""
        args: list[Any] = ["claim", now_ms(), lease_ms]
        for rid, k, n in items:
            args += [rid, k, n]
        await self._run(aid, args, pipe)

    async def event(self, pipe, aid: str, events: Iterable["Event"]):
        args: list[Any] = ["event"]
        now = now_ms()
        for e in events:
            args += [e.rid, e.k, e.n, e.leg, e.status, int(e.permanent), e.provider, e.ref or "", e.code or "",
                     e.at_ms or now, e.channel, e.backoff_ms]
        await self._run(aid, args, pipe)

    async def timer(self, pipe, aid: str, members: Iterable[str], *, claim: bool = False):
        """With `claim`, a step the timer says to send is claimed in the same call:
        its reply is [b"ok", legs JSON, step, attempt]."""
        await self._run(aid, ["timer", now_ms(), CLAIM_LEASE_MS if claim else 0, *members], pipe)

    async def close(self, pipe, aid: str, rids: Iterable[str], state: str):
        await self._run(aid, ["close", now_ms(), state, *rids], pipe)


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
