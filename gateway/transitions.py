"""Python side of `transitions.lua`: one method per operation.

Every method takes an optional pipeline so a batch of deliveries costs one
round trip; the script is loaded once per client (EVALSHA afterwards).
"""

from __future__ import annotations

import time
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

    async def plan(self, aid: str, level: int, max_attempts: int, rows: Iterable[tuple[str, int, list, str]]) -> int:
        """rows: (resident id, sequence, plan steps, initial state)."""
        args: list[Any] = ["plan", now_ms(), level, max_attempts]
        for rid, seq, steps, state in rows:
            args += [rid, seq, orjson.dumps(steps), state]
        return await self._run(aid, args)

    # The methods below queue onto a pipeline; the caller executes it.
    async def claim(self, pipe, aid: str, rid: str, k: int, n: int, lease_ms: int = CLAIM_LEASE_MS):
        await self._run(aid, ["claim", rid, k, n, now_ms(), lease_ms], pipe)

    async def event(self, pipe, aid: str, rid: str, k: int, n: int, leg: int | str, status: str, *, permanent: bool,
              provider: str, ref: str, code: str, channel: str, backoff_ms: int = 0, at_ms: int | None = None):
        args = ["event", rid, k, n, leg, status, int(permanent), provider, ref, code,
                at_ms or now_ms(), channel, backoff_ms]
        await self._run(aid, args, pipe)

    async def timer(self, pipe, aid: str, member: str):
        await self._run(aid, ["timer", member, now_ms()], pipe)

    async def close(self, pipe, aid: str, rid: str, state: str):
        await self._run(aid, ["close", rid, state, now_ms()], pipe)


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
