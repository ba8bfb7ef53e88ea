"""How the delivery engine is doing, as an operator must see it while
something breaks: whether Redis answers, how many tasks wait in the
broker's queues, and how late the oldest due timer of a running alert is.

`/metrics` (gateway/metrics.py) and the console's engine line read it here,
so the two never disagree.  Each part is asked with a short timeout: during
a fault this is what must still answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from . import keys, tasks
from .transitions import text

log = logging.getLogger("gateway.engine_health")

QUEUE_TIMEOUT_S = 2.0
REDIS_TIMEOUT_S = 2.0
# Page renders and live streams of one process share a reading this fresh.
FRESH_S = 1.0


@dataclass(frozen=True)
class EngineHealth:
    redis_up: bool = True
    # Tasks waiting, by queue; empty when the broker did not answer.
    queues: dict = field(default_factory=dict)
    # How far the oldest due timer is behind, by Redis's clock.
    timer_lag_s: float = 0.0
    timers: int = 0
    # Seconds the print house's drop box has failed (channels/mail.py); None while it works.
    print_house_down_s: float | None = None

    def as_dict(self) -> dict:
        return {"redis_up": self.redis_up, "queues": self.queues, "timer_lag_s": round(self.timer_lag_s, 1),
                "timers": self.timers, "print_house_down_s": self.print_house_down_s}


async def queue_depths() -> dict:
    """Messages waiting in the Celery queues, asked of the broker itself (Redis lists or RabbitMQ)."""
    if not tasks.app.conf.broker_url:
        return {}

    def ask() -> dict:
        out = {}
        with tasks.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=QUEUE_TIMEOUT_S)
            channel = conn.default_channel
            for queue in (tasks.Queues.STEPS, tasks.Queues.FANOUT):
                try:
                    out[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # noqa: BLE001 - a queue nobody has used yet does not exist
                    out[queue] = 0
        return out

    try:
        return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, ask), QUEUE_TIMEOUT_S * 2)
    except Exception:
        log.warning("queue depths unavailable", exc_info=True)
        return {}


async def timers(redis, aids) -> tuple[float, int]:
    """(seconds the oldest due timer of these alerts is behind, their timers in all), by Redis's clock."""
    aids = list(aids)
    pipe = redis.pipeline(transaction=False)
    pipe.time()
    for aid in aids:
        pipe.zrange(keys.alert_timers(aid), 0, 0, withscores=True)
        pipe.zcard(keys.alert_timers(aid))
    (seconds, micros), *res = await pipe.execute()
    now_ms = seconds * 1000 + micros // 1000
    firsts = [first[0][1] for first in res[::2] if first]
    lag = max(0.0, (now_ms - min(firsts)) / 1000) if firsts else 0.0
    return lag, sum(res[1::2])


async def print_house_down_s(redis) -> float | None:
    """How long the print house's drop box has failed, by this process's clock (the
    batcher wrote its own); None while it works."""
    since = await redis.get(keys.PRINT_HOUSE_DOWN)
    return max(0.0, time.time() - int(since) / 1000) if since else None


async def _read(redis) -> EngineHealth:
    async def from_redis() -> tuple[float, int, float | None]:
        lag, count = await timers(redis, [text(a) for a in await redis.smembers(keys.ACTIVE_ALERTS)])
        return lag, count, await print_house_down_s(redis)

    queues = asyncio.ensure_future(queue_depths())
    try:
        lag, count, print_house = await asyncio.wait_for(from_redis(), REDIS_TIMEOUT_S)
    except (TimeoutError, RedisError, OSError):
        return EngineHealth(redis_up=False, queues=await queues)
    return EngineHealth(queues=await queues, timer_lag_s=lag, timers=count, print_house_down_s=print_house)


# By Redis client: (when read, what was read).
_last: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def read(redis) -> EngineHealth:
    """The engine's health as this process last read it, at most FRESH_S old."""
    last = _last.get(redis)
    if last is None or time.monotonic() - last[0] > FRESH_S:
        last = _last[redis] = (time.monotonic(), await _read(redis))
    return last[1]
