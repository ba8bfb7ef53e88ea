"""Which provider takes the next message, from what every worker has seen.

A channel with several providers (SMS: Twilio and Kannel) keeps, per
provider and per 10-second bucket, a few counters in Redis: messages the
provider accepted, sends it refused or never answered, delivery receipts that
blame the provider or its network, and the time receipts took.  Over the
last minute they give each provider a health score; the traffic split follows
the scores: a degrading provider loses its share to a healthy one (first the
other active providers, else the first healthy standby), keeps a small probe
share to prove it is back, and wins its share back as its score recovers.

Every process computes the split from the same counters.  When it moves by
a tenth or more, the process that notices first publishes it (a Redis hash
the console shows, with a capped list of past switches) and logs the switch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import orjson

from gateway import keys
from gateway.transitions import publish_split

log = logging.getLogger("channels.routing")

BUCKET_S = 10
WINDOW_BUCKETS = 6
# Fewer attempts than this in the window say nothing about a provider.
MIN_SAMPLES = 5
# A provider below this score gives its share away.
HEALTHY = 0.5
# What a degraded provider keeps, so that its recovery shows.
PROBE_SHARE = 0.05
# Receipts slower than this on average cost a provider share.
SLOW_RECEIPT_S = 120.0
# How long a process trusts its split; failures make it look again sooner.
REFRESH_S = 2.0
RECHECK_AFTER_FAILURE_S = 0.5
# Counters recorded within this window go to Redis in one round trip.
FLUSH_S = 0.05
# A split is published (and logged) when a share moves by this much.
SWITCH_STEP = 0.10
SWITCHES_KEPT = 100
COUNTERS = ("sent", "failed", "delivered", "undelivered", "receipt_ms", "receipts")


@dataclass(frozen=True)
class Health:
    provider: str
    sent: int = 0
    failed: int = 0
    delivered: int = 0
    undelivered: int = 0
    receipt_ms: int = 0
    receipts: int = 0

    @property
    def attempts(self) -> int:
        return self.sent + self.failed

    @property
    def error_rate(self) -> float:
        return min(1.0, (self.failed + self.undelivered) / self.attempts) if self.attempts else 0.0

    @property
    def mean_receipt_s(self) -> float | None:
        return self.receipt_ms / self.receipts / 1000.0 if self.receipts else None

    @property
    def score(self) -> float:
        if self.attempts < MIN_SAMPLES:
            return 1.0
        score = 1.0 - self.error_rate
        mean = self.mean_receipt_s
        if mean and mean > SLOW_RECEIPT_S:
            score *= SLOW_RECEIPT_S / mean
        return score

    def describe(self) -> str:
        text = f"{self.provider}: {self.failed + self.undelivered}/{self.attempts} failed"
        mean = self.mean_receipt_s
        if mean is not None:
            text += f", receipts in {mean:.1f} s"
        return text + f" over {BUCKET_S * WINDOW_BUCKETS} s"


def shares(base: dict[str, float], scores: dict[str, float]) -> dict[str, float]:
    """The traffic split: base shares scaled by health, what is lost moved on.

    `base` is in order of preference; a base share of 0 marks a standby."""
    names = list(base)
    if not names:
        return {}
    total = sum(base.values())
    weight = {n: base[n] / total for n in names} if total > 0 else {n: float(i == 0) for i, n in enumerate(names)}
    out = {n: weight[n] * max(scores.get(n, 1.0), PROBE_SHARE) for n in names}
    lost = 1.0 - sum(out.values())
    if lost > 1e-9:
        standby = [n for n in names if weight[n] == 0 and scores.get(n, 1.0) >= HEALTHY]
        if standby:
            out[standby[0]] += lost
        else:
            # No standby to take it: the healthier active providers do.
            pull = {n: out[n] * scores.get(n, 1.0) for n in names}
            if sum(pull.values()) <= 0:
                pull = dict(out)
            pulled = sum(pull.values())
            for n in names:
                out[n] += lost * pull[n] / pulled
    total = sum(out.values())
    return {n: out[n] / total for n in names}


def state_of(split: dict[str, float]) -> str:
    """The split as the console shows it, in whole percent."""
    return ",".join(f"{n}={round(share * 100)}" for n, share in split.items())


def parse_state(state: str) -> dict[str, float]:
    out = {}
    for part in filter(None, state.split(",")):
        name, _, pct = part.partition("=")
        out[name] = int(pct) / 100.0
    return out


def parse_base(spec: str, configured: Sequence[str]) -> dict[str, float]:
    """"twilio=100,kannel=0" -> base shares of the configured providers, in that order.

    Providers the spec leaves out follow as standbys; an empty spec makes the
    first configured provider primary and the rest standbys."""
    base: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, share = part.partition("=")
        name = name.strip()
        if name in configured:
            base[name] = float(share) if share.strip() else 1.0
    for i, name in enumerate(configured):
        base.setdefault(name, 1.0 if not base and i == 0 else 0.0)
    return base


class Router:
    def __init__(self, redis: Any, channel: str, base: dict[str, float], *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None):
        self.redis = redis
        self.channel = channel
        self.base = dict(base)
        self.clock = clock
        self.rng = rng or random.Random()
        self._split = shares(self.base, {})
        self._read_at = float("-inf")
        self._refreshing: asyncio.Future | None = None
        self._counts: Counter = Counter()
        self._flush_at: asyncio.TimerHandle | None = None

    @property
    def providers(self) -> list[str]:
        return list(self.base)

    # Recording ---------------------------------------------------------------

    def record(self, provider: str, **counts: int) -> None:
        """Adds to the provider's counters (sent=1, failed=1, delivered=1,
        undelivered=1, receipt_ms=...); written to Redis shortly, in one go."""
        if "receipt_ms" in counts:
            counts["receipts"] = 1
        bucket = int(self.clock() // BUCKET_S)
        for name, value in counts.items():
            if name not in COUNTERS:
                raise ValueError(f"unknown counter {name!r}")
            self._counts[(provider, bucket, name)] += int(value)
        if self.redis is not None and self._flush_at is None:
            loop = asyncio.get_running_loop()
            self._flush_at = loop.call_later(FLUSH_S, lambda: asyncio.ensure_future(self.flush()))

    async def flush(self) -> None:
        self._flush_at = None
        counts, self._counts = self._counts, Counter()
        if not counts or self.redis is None:
            return
        pipe = self.redis.pipeline(transaction=False)
        touched = set()
        for (provider, bucket, name), value in counts.items():
            if value:
                key = keys.route_health(self.channel, provider, bucket)
                pipe.hincrby(key, name, value)
                touched.add(key)
        for key in touched:
            pipe.expire(key, BUCKET_S * (WINDOW_BUCKETS + 1))
        try:
            await pipe.execute()
        except Exception:
            log.warning("could not record %s provider health", self.channel, exc_info=True)
            return
        failures = any(name in ("failed", "undelivered") for (_, _, name) in counts)
        if failures and self.clock() - self._read_at >= RECHECK_AFTER_FAILURE_S:
            await self.refresh()

    # Reading -----------------------------------------------------------------

    async def health(self) -> dict[str, Health]:
        now_bucket = int(self.clock() // BUCKET_S)
        buckets = range(now_bucket - WINDOW_BUCKETS + 1, now_bucket + 1)
        pipe = self.redis.pipeline(transaction=False)
        for provider in self.base:
            for b in buckets:
                pipe.hgetall(keys.route_health(self.channel, provider, b))
        rows = iter(await pipe.execute())
        out = {}
        for provider in self.base:
            total: Counter = Counter()
            for _ in buckets:
                for k, v in next(rows).items():
                    total[k.decode() if isinstance(k, bytes) else k] += int(v)
            out[provider] = Health(provider, **{c: total.get(c, 0) for c in COUNTERS})
        return out

    async def split(self) -> dict[str, float]:
        """The current split, re-read from Redis every few seconds."""
        if self.redis is not None and self.clock() - self._read_at >= REFRESH_S:
            await self.refresh()
        return self._split

    async def refresh(self) -> None:
        # Concurrent sends share one read.
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self._refresh()
        except Exception:
            log.warning("could not read %s provider health; keeping the last split", self.channel, exc_info=True)
        finally:
            self._read_at = self.clock()
            self._refreshing.set_result(None)
            self._refreshing = None

    async def _refresh(self) -> None:
        health = await self.health()
        new = shares(self.base, {p: h.score for p, h in health.items()})
        self._split = new
        stored = await self.redis.hget(keys.route_split(self.channel), "state")
        stored = stored.decode() if isinstance(stored, bytes) else (stored or "")
        old = parse_state(stored) if stored else shares(self.base, {})
        if stored and max(abs(new.get(p, 0.0) - old.get(p, 0.0)) for p in new) < SWITCH_STEP:
            return
        reason = "; ".join(health[p].describe() for p in new if new[p] < old.get(p, 0.0) - 1e-9) or \
            "; ".join(health[p].describe() for p in new)
        switch = {"at_ms": int(self.clock() * 1000), "from": state_of(old), "to": state_of(new), "reason": reason}
        published = await publish_split(self.redis, keys.route_split(self.channel),
                                        keys.route_switches(self.channel), stored, state_of(new), orjson.dumps(new),
                                        orjson.dumps(switch), switch["at_ms"], SWITCHES_KEPT)
        if published and stored:
            log.warning("%s traffic switched: %s -> %s (%s)", self.channel.upper(), _pretty(old), _pretty(new), reason)
        elif published:
            log.info("%s traffic split: %s", self.channel.upper(), _pretty(new))

    def order(self, split: dict[str, float]) -> list[str]:
        """Providers to try for one message: one drawn by share, then the rest
        by share and preference (standbys too: a failover costs one fast failure)."""
        if len(self.base) == 1:  # one provider: nothing to draw
            return self.providers
        names = [n for n in split if split[n] > 0]
        first = self.rng.choices(names, weights=[split[n] for n in names])[0] if names else self.providers[0]
        rest = sorted((n for n in self.base if n != first), key=lambda n: (-split.get(n, 0.0), self.providers.index(n)))
        return [first, *rest]


def _pretty(split: dict[str, float]) -> str:
    return ", ".join(f"{n} {round(s * 100)}%" for n, s in split.items())


async def current_split(redis: Any, channel: str = "sms", switches: int = 10) -> dict:
    """What the console shows: the split in force and the latest switches."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.route_split(channel))
    pipe.lrange(keys.route_switches(channel), 0, switches - 1)
    split, recent = await pipe.execute()
    split = {k.decode(): v.decode() for k, v in split.items()}
    return {
        "shares": orjson.loads(split["shares"]) if "shares" in split else {},
        "since_ms": int(split["at_ms"]) if "at_ms" in split else None,
        "switches": [orjson.loads(s) for s in recent],
    }

