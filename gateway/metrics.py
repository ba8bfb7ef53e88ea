"""`/metrics` for Prometheus, read from Redis at scrape time.

Every api process answers with the same figures, because nothing is counted
in process memory: a custom collector turns one snapshot of Redis into
metric families.  A finished alert's provider and confirmation tallies are
kept in Redis (`{a:<id>}:tallies`) so a scrape reads them instead of every
history again; a running alert is read through a sample of its deliveries
(at most RUNNING_SAMPLE, spread over it, scaled to the whole), so a scrape
costs the same at a thousand residents or a million: under a storm it must
answer while the storm lasts.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from . import deliveries, keys
from .api.http import STATE, bearer
from .api.routing import Route, returns
from .console.outcomes import label, scan
from .console.providers import tallies_of
from .engine_health import print_house_down_s, queue_depths, timers
from .problems import Problem
from .transitions import STATES, text

log = logging.getLogger("gateway.metrics")

# Seconds: from a push answered in a second to a letter posted in days.
TTC_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 86400, 3 * 86400)
ANSWER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MAX_ALERTS = 1000
RUNNING_SAMPLE = 1000
# A scrape that cannot read Redis in this long says so (gateway_redis_up 0)
# instead of hanging past the scraper's own timeout, when it matters most.
REDIS_TIMEOUT_S = 5.0


def buckets(values: list[float], bounds, scale: float = 1.0) -> dict:
    """Cumulative bucket counts of `values`, each standing for `scale` values (a sample's)."""
    ordered = sorted(values)
    return {"counts": [round(bisect_left(ordered, b + 1e-9) * scale) for b in bounds],
            "sum": sum(values) * scale, "count": round(len(values) * scale)}


async def tallies(redis, aid: str, sample: tuple[list[str], int] | None = None) -> dict:
    """Provider attempts and confirmation times of one alert, as bucket counts:
    read from all of its deliveries, or from a `sample` of them (deliveries.spread)
    and scaled to all."""
    rids, count = sample or await deliveries.spread(redis, aid, 10**12)
    providers = await tallies_of(redis, aid, rids)
    outcomes = await scan(redis, aid, rids)
    scale = count / len(rids) if rids else 1.0
    return {
        "providers": {name: {"outcomes": {f"{ch}|{o}": round(n * scale) for (ch, o), n in t.results.items()},
                             "answer": buckets([ms / 1000 for ms in t.answer_ms], ANSWER_BUCKETS, scale)}
                      for name, t in providers.items()},
        "ttc": {ch: buckets(times, TTC_BUCKETS, scale) for ch, times in outcomes.ttc.items()},
    }


# Every series of alerts and their deliveries carries `cap_status`: Actual,
# Exercise or Test, so a drill is never counted as a real alert.
ACTUAL = "Actual"


@dataclass
class Snapshot:
    alerts: dict = field(default_factory=dict)  # (cap status, status) -> count
    deliveries: dict = field(default_factory=dict)  # (cap status, state) -> count
    confirmed: dict = field(default_factory=dict)  # (cap status, channel) -> count
    in_progress: dict = field(default_factory=dict)  # (cap status, channel of the current step) -> count
    events: dict = field(default_factory=dict)  # (cap status, channel, status) -> count
    fallbacks: dict = field(default_factory=dict)  # cap status -> count
    providers: dict = field(default_factory=dict)  # provider -> {"outcomes", "answer"}
    ttc: dict = field(default_factory=dict)  # (cap status, channel) -> buckets
    queues: dict = field(default_factory=dict)  # queue -> depth
    timer_lag_s: float = 0.0
    timers: int = 0
    redis_up: bool = True
    # This process's own, unlike the rest: read from its Redis pool, not from Redis.
    pool_idle_fewest: int | None = None
    print_house_up: bool = True


def _add(counts: dict, key, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


async def snapshot(state: dict) -> Snapshot:
    redis = state["redis"]
    snap = Snapshot()
    aids = [text(a) for a in await redis.zrevrange(keys.ALERTS, 0, MAX_ALERTS - 1)]
    active = {text(a) for a in await redis.smembers(keys.ACTIVE_ALERTS)}
    pipe = redis.pipeline(transaction=False)
    for aid in aids:
        pipe.hmget(keys.alert(aid), "status", "drill")
        pipe.hgetall(keys.alert_counts(aid))
        pipe.get(keys.tallies(aid))
    res = await pipe.execute()
    # A running alert's sample, read once for its tallies and its steps' channels.
    kinds, in_progress, samples = {}, {}, {}
    for aid, (status, drill), counts, kept in zip(aids, res[::3], res[1::3], res[2::3]):
        status, kind = text(status or b"gone"), text(drill or ACTUAL)
        kinds[aid] = kind
        in_progress[aid] = int(counts.get(b"in_progress", 0))
        _add(snap.alerts, (kind, status), 1)
        for f, v in ((text(f), int(v)) for f, v in counts.items()):
            if f in STATES:
                _add(snap.deliveries, (kind, f), v)
            elif f.startswith("by:"):
                _add(snap.confirmed, (kind, f[3:]), v)
            elif f.startswith("a:"):
                _, channel, st = f.split(":", 2)
                _add(snap.events, (kind, channel, st), v)
            elif f == "fallbacks":
                _add(snap.fallbacks, kind, v)
        finished = aid not in active and status not in ("planning", "active")
        if kept:
            t = orjson.loads(kept)
        elif finished:
            t = await tallies(redis, aid)
            await redis.set(keys.tallies(aid), orjson.dumps(t))
        else:
            samples[aid] = await deliveries.spread(redis, aid, RUNNING_SAMPLE)
            t = await tallies(redis, aid, samples[aid])
        _add_tallies(snap, t, kind)
    snap.timer_lag_s, snap.timers = await timers(redis, active)
    snap.print_house_up = await print_house_down_s(redis) is None
    for aid in active:
        await _running(redis, aid, snap, kinds.get(aid, ACTUAL), in_progress.get(aid, 0), samples.get(aid))
    snap.queues = await queue_depths()
    return snap


def _add_tallies(snap: Snapshot, t: dict, kind: str) -> None:
    for name, p in t["providers"].items():
        mine = snap.providers.setdefault(name, {"outcomes": {}, "answer": None})
        for k, n in p["outcomes"].items():
            mine["outcomes"][k] = mine["outcomes"].get(k, 0) + n
        mine["answer"] = _sum_buckets(mine["answer"], p["answer"])
    for ch, b in t["ttc"].items():
        snap.ttc[(kind, ch)] = _sum_buckets(snap.ttc.get((kind, ch)), b)


def _sum_buckets(a: dict | None, b: dict) -> dict:
    if a is None:
        return {"counts": list(b["counts"]), "sum": b["sum"], "count": b["count"]}
    return {"counts": [x + y for x, y in zip(a["counts"], b["counts"])], "sum": a["sum"] + b["sum"],
            "count": a["count"] + b["count"]}


async def _running(redis, aid: str, snap: Snapshot, kind: str, in_progress: int,
                   sample: tuple[list[str], int] | None) -> None:
    """A running alert: its `in_progress` deliveries by the channel of their step
    (shared out as a sample of its deliveries has them)."""
    if not in_progress:
        return
    rids, _ = sample or await deliveries.spread(redis, aid, RUNNING_SAMPLE)
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(keys.delivery(aid, rid), "s", "k", "p")
    seen = Counter(label(orjson.loads(p)[int(k)]) for s, k, p in await pipe.execute() if s == b"in_progress")
    sampled = sum(seen.values())
    for channel, n in seen.items():
        _add(snap.in_progress, (kind, channel), round(in_progress * n / sampled))


async def snapshot_or_outage(state: dict) -> Snapshot:
    """The snapshot; if Redis does not answer, what is known without it (the broker's queues)."""
    try:
        return await asyncio.wait_for(snapshot(state), REDIS_TIMEOUT_S)
    except (TimeoutError, RedisError, OSError):
        log.warning("metrics without Redis", exc_info=True)
        return Snapshot(queues=await queue_depths(), redis_up=False)


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot):
        self.snap = snap

    def collect(self):
        s = self.snap
        yield _gauge("gateway_alerts", "Alerts by CAP status (drills apart) and status", ["cap_status", "status"],
                     s.alerts)
        yield _gauge("gateway_deliveries", "Deliveries by CAP status of their alert and state", ["cap_status", "state"],
                     s.deliveries)
        yield _gauge("gateway_deliveries_confirmed", "Confirmed deliveries by confirming channel",
                     ["cap_status", "channel"], s.confirmed)
        yield _gauge("gateway_deliveries_in_progress", "Deliveries of running alerts by the channel of their step",
                     ["cap_status", "channel"], s.in_progress)
        events = CounterMetricFamily("gateway_attempt_events", "Attempt status events by channel and status",
                                     labels=["cap_status", "channel", "status"])
        for key, n in sorted(s.events.items()):
            events.add_metric(list(key), n)
        yield events
        fallbacks = CounterMetricFamily("gateway_fallbacks", "Moves to a plan's next step", labels=["cap_status"])
        for kind, n in sorted(s.fallbacks.items()):
            fallbacks.add_metric([kind], n)
        yield fallbacks
        attempts = CounterMetricFamily("gateway_provider_attempts", "Attempts by provider, channel and outcome",
                                       labels=["provider", "channel", "outcome"])
        answer = HistogramMetricFamily("gateway_provider_answer_seconds",
                                       "From claiming a send to the provider's first answer", labels=["provider"])
        for name, p in sorted(s.providers.items()):
            for key, n in sorted(p["outcomes"].items()):
                channel, outcome = key.split("|")
                attempts.add_metric([name, channel, outcome], n)
            answer.add_metric([name], _histogram(p["answer"], ANSWER_BUCKETS), p["answer"]["sum"])
        yield attempts
        yield answer
        ttc = HistogramMetricFamily("gateway_time_to_confirmation_seconds",
                                    "From the alert to each confirmation, by confirming channel",
                                    labels=["cap_status", "channel"])
        for key, b in sorted(s.ttc.items()):
            ttc.add_metric(list(key), _histogram(b, TTC_BUCKETS), b["sum"])
        yield ttc
        yield _gauge("gateway_queue_depth", "Tasks waiting in each Celery queue", ["queue"], s.queues)
        yield GaugeMetricFamily("gateway_timer_lag_seconds", "How far the oldest due timer is behind",
                                value=max(0.0, s.timer_lag_s))
        yield GaugeMetricFamily("gateway_timers_pending", "Timers of running alerts", value=s.timers)
        yield GaugeMetricFamily("gateway_print_house_up", "Whether the print house's drop box took the last round of letters",
                                value=int(s.print_house_up))
        yield GaugeMetricFamily("gateway_redis_up", f"Whether Redis answered this scrape within {REDIS_TIMEOUT_S:g} s",
                                value=int(s.redis_up))
        if s.pool_idle_fewest is not None:
            yield GaugeMetricFamily("gateway_redis_pool_idle_fewest",
                                    "Fewest connections of this process's Redis pool free since its previous scrape "
                                    "(0: callers waited for one)", value=s.pool_idle_fewest)


def _gauge(name: str, doc: str, labels: list[str], values: dict) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for key, n in sorted(values.items()):
        g.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return g


def _histogram(b: dict, bounds) -> list[tuple[str, int]]:
    return [(str(float(le)), n) for le, n in zip(bounds, b["counts"])] + [("+Inf", b["count"])]


async def scrape(request: web.Request) -> web.Response:
    token = request.app[STATE]["settings"].metrics_token
    if token and not hmac.compare_digest((bearer(request) or "").encode(), token.encode()):
        raise Problem(401, "Unauthorized", "Send `Authorization: Bearer <GATEWAY_METRICS_TOKEN>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    started = time.monotonic()
    registry = CollectorRegistry(auto_describe=False)
    snap = await snapshot_or_outage(request.app[STATE])
    # Only gateway.store's pool keeps the mark; an app given another client goes without.
    fewest_idle = getattr(request.app[STATE]["redis"].connection_pool, "fewest_idle", None)
    snap.pool_idle_fewest = fewest_idle() if fewest_idle else None
    registry.register(SnapshotCollector(snap))
    body = generate_latest(registry)
    log.debug("metrics scrape took %.3f s", time.monotonic() - started)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


ROUTES = [
    Route("GET", "/metrics", scrape, "Prometheus metrics, read from Redis at scrape time", tag="ops",
          responses={200: returns("Metrics in the Prometheus text format", {"type": "string"}, "text/plain")}),
]
