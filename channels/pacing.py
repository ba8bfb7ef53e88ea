"""Pacing: how fast a provider lets us send, shared by every worker process.

Providers cap throughput per sender number and per account (SMS per second,
calls per second); past the cap they answer 429, queue for minutes, or a
carrier drops the link.  Each cap is a bucket in Redis kept as GCRA state
(the theoretical arrival time of the next message), so any number of workers
share it exactly.  A send reserves a slot in all its buckets at once and
sleeps until the slot comes; reservations made in the same moment (the sends
of one batch) go to Redis in one round trip, not one per message.  Slots are
judged by Redis's clock, so a worker whose clock is off waits no longer.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from gateway.transitions import reserve

# Sends arriving within this window share one round trip to Redis.
COALESCE_S = 0.002


@dataclass(frozen=True)
class Bucket:
    key: str
    rate_per_s: float
    # Sends allowed back to back after a quiet spell; one second's worth by default.
    burst: int = 0

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.rate_per_s

    @property
    def tolerance_ms(self) -> float:
        burst = self.burst or max(1, math.floor(self.rate_per_s))
        return self.interval_ms * (burst - 1)


class Pacer:
    """Reserves send slots in shared buckets; `wait` returns when the slot has come."""

    def __init__(self, redis: Any, *, sleep=asyncio.sleep):
        self.redis = redis
        self.sleep = sleep
        # Sends waiting for the next round trip, grouped by their buckets.
        self._pending: dict[tuple[Bucket, ...], list[asyncio.Future]] = {}
        self._flush_at: asyncio.TimerHandle | None = None
        self.round_trips = 0

    async def wait(self, *buckets: Bucket) -> float:
        """Sleeps until a send may go through all `buckets`; returns the seconds waited."""
        buckets = tuple(b for b in buckets if b.rate_per_s > 0)
        if not buckets or self.redis is None:
            return 0.0
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.setdefault(buckets, []).append(future)
        if self._flush_at is None:
            self._flush_at = loop.call_later(COALESCE_S, lambda: asyncio.ensure_future(self._flush()))
        delay_ms = await future
        if delay_ms > 0:
            await self.sleep(delay_ms / 1000.0)
        return delay_ms / 1000.0

    async def _flush(self) -> None:
        self._flush_at = None
        pending, self._pending = self._pending, {}
        try:
            pipe = self.redis.pipeline(transaction=False)
            for buckets, futures in pending.items():
                spacing = [f"{ms:.3f}" for b in buckets for ms in (b.interval_ms, b.tolerance_ms)]
                reserve(pipe, [b.key for b in buckets], len(futures), spacing)
            results = await pipe.execute()
            self.round_trips += 1
        except Exception as e:  # Redis away: send unpaced rather than not at all
            results = [e] * len(pending)
        for futures, delays in zip(pending.values(), results):
            for i, future in enumerate(futures):
                if not future.done():
                    future.set_result(0 if isinstance(delays, Exception) else int(delays[i]))
