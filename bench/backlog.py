"""Where a fan-out's work waits, sampled while it runs (bench/fanout.py).

- Timers due that the pump has not fired yet (in the alert's timer set),
  and tasks published that no worker has taken (in the broker's queues):
  an escalation waits in one or the other between its deadline and the
  worker's timer op.
- Redis's answer time to a PING from a connection of its own, every 10 ms
  as `redis-cli --latency` does it, in a thread so the bench's event loop
  does not delay it: each of the API's round trips waits about this long.
- SLOWLOG: every command that held Redis's single thread for over 1 ms,
  and for the Lua calls, which operation it was.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import redis as sync_redis

from gateway import keys
from gateway.tasks import QUEUE_ORDER, Queues

SLOW_US = 1000


class RedisLatency:
    """PING round trips (ms) on one connection, from a thread, until stopped."""

    def __init__(self, socket_path: str):
        self.client = sync_redis.Redis(unix_socket_path=socket_path)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RedisLatency":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            self.client.ping()
            self.samples.append((time.monotonic(), (time.perf_counter() - began) * 1000))
            self._stop.wait(0.01)

    def between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.samples if start <= at <= end]


class Backlog:
    """Every `every_s`: (monotonic s, timers due and not fired, steps tasks queued, fan-out tasks queued)."""

    def __init__(self, redis, broker, aid: str, every_s: float = 0.2):
        self.redis, self.broker, self.aid, self.every_s = redis, broker, aid, every_s
        self.samples: list[tuple[float, int, int, int]] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            due = await self.redis.zcount(keys.alert_timers(self.aid), "-inf", int(time.time() * 1000))
            pipe = self.broker.pipeline(transaction=False)
            for name in lists(Queues.STEPS) + lists(Queues.FANOUT):
                pipe.llen(name)
            depths = await pipe.execute()
            steps, fanout = sum(depths[:len(depths) // 2]), sum(depths[len(depths) // 2:])
            self.samples.append((time.monotonic(), due, steps, fanout))
            try:
                await asyncio.wait_for(stop.wait(), self.every_s)
            except asyncio.TimeoutError:
                pass

    def summary(self, start: float, end: float, residents: int) -> dict[str, float]:
        """Peaks between `start` and `end`, and the mean wait per resident in the timer set
        (timer-seconds over residents; Little's law)."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if not window:
            return {"due_peak": 0, "steps_peak": 0, "fanout_peak": 0, "due_wait_s": 0.0}
        area = sum(due * (b[0] - a[0]) for (a, b, due) in ((a, b, a[1]) for a, b in zip(window, window[1:])))
        return {"due_peak": max(s[1] for s in window), "steps_peak": max(s[2] for s in window),
                "fanout_peak": max(s[3] for s in window), "due_wait_s": area / residents}


def lists(queue: str) -> list[str]:
    """Kombu's Redis lists of `queue`, one per priority (a turn, gateway/tasks.py)."""
    return [queue] + [f"{queue}\x06\x16{p}" for p in QUEUE_ORDER["priority_steps"][1:]]


async def slow_commands_begin(redis) -> None:
    await redis.config_set("slowlog-log-slower-than", SLOW_US)
    await redis.config_set("slowlog-max-len", 10_000)
    await redis.slowlog_reset()


async def slow_commands(redis) -> dict[str, tuple[int, float]]:
    """Since slow_commands_begin: (count, longest ms) per command, a Lua call named by its operation."""
    count: Counter = Counter()
    longest: dict[str, float] = {}
    for entry in await redis.slowlog_get(10_000):
        args = [a.decode(errors="replace") for a in entry["command"].split(b" ", 8)]
        name = args[0].upper() if args else "?"
        if name == "EVALSHA" and len(args) > 2 and args[2].isdigit() and len(args) > 3 + int(args[2]):
            name = f"EVALSHA {args[3 + int(args[2])]}"
        count[name] += 1
        longest[name] = max(longest.get(name, 0.0), entry["duration"] / 1000)
    return {name: (n, longest[name]) for name, n in count.most_common()}
