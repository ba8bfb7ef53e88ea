"""Provider health: error rate, latency and traffic split, from delivery histories.

The engine counts statuses per channel (`a:<channel>:<status>`) but names
providers only in each delivery's history (`at|step|attempt|leg|status|
provider|ref|code`), so this reads histories, sampled for large alerts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson

from .. import deliveries, keys
from ..transitions import now_ms, text

SAMPLE = 5000
CHUNK = 1000
RANK = {"queued": 1, "sent": 2, "posted": 3, "delivered": 4, "acknowledged": 5}


@dataclass
class Tally:
    """What one provider did with the attempts handed to it."""

    provider: str
    # (channel, outcome) -> attempts; outcome is how far an attempt got:
    # acknowledged ... queued, or failed, timed_out, pending.
    results: Counter = field(default_factory=Counter)
    # From the claim to the provider's first answer, and to proof of delivery.
    answer_ms: list[int] = field(default_factory=list)
    deliver_ms: list[int] = field(default_factory=list)

    @property
    def outcomes(self) -> Counter:
        out: Counter = Counter()
        for (_, outcome), n in self.results.items():
            out[outcome] += n
        return out

    @property
    def channels(self) -> Counter:
        out: Counter = Counter()
        for (channel, _), n in self.results.items():
            out[channel] += n
        return out

    @property
    def attempts(self) -> int:
        return sum(self.results.values())

    @property
    def error_rate(self) -> float:
        return self.outcomes["failed"] / self.attempts if self.attempts else 0.0

    def merge(self, other: "Tally") -> None:
        self.results += other.results
        self.answer_ms += other.answer_ms
        self.deliver_ms += other.deliver_ms


def read_history(plan: list, lines: list[str], tallies: dict[str, Tally]) -> None:
    """Add one delivery's attempts, one per (step, attempt, leg, provider)."""
    claimed: dict[tuple[int, int], int] = {}
    timed_out: set[tuple[int, int]] = set()
    seen: dict[tuple, dict] = {}
    for line in lines:
        at, k, n, leg, status, provider, _ref, _code = line.split("|", 7)
        step = (int(k), int(n))
        if leg == "*":
            if status == "claimed":
                claimed.setdefault(step, int(at))
            elif status == "timed_out":
                timed_out.add(step)
            continue
        if not provider:
            continue
        a = seen.setdefault((*step, int(leg), provider), {"first": int(at), "best": 0, "failed": False,
                                                          "delivered": None})
        rank = RANK.get(status, 0)
        a["best"] = max(a["best"], rank)
        # A send the provider never answered is its failure too, though the attempt goes on.
        a["failed"] |= status in ("failed", "unanswered")
        if rank >= RANK["delivered"] and a["delivered"] is None:
            a["delivered"] = int(at)
    for (k, n, leg, provider), a in seen.items():
        tally = tallies.setdefault(provider, Tally(provider))
        legs = plan[k]["l"] if k < len(plan) else []
        # A web-page acknowledgement names no leg of the plan.
        channel = "web" if provider == "web" or leg >= len(legs) else legs[leg][0]
        if a["best"]:
            outcome = next(s for s, r in RANK.items() if r == a["best"])
        else:
            outcome = "failed" if a["failed"] else "timed_out" if (k, n) in timed_out else "pending"
        tally.results[(channel, outcome)] += 1
        start = claimed.get((k, n))
        if start is not None:
            tally.answer_ms.append(max(0, a["first"] - start))
            if a["delivered"] is not None:
                tally.deliver_ms.append(max(0, a["delivered"] - start))


async def alert_tallies(redis, aid: str, sample: int = SAMPLE) -> tuple[dict[str, Tally], bool]:
    """Per provider for one alert, and whether it was sampled."""
    everyone, count = await deliveries.spread(redis, aid, sample)
    return await tallies_of(redis, aid, everyone), len(everyone) < count


async def tallies_of(redis, aid: str, rids: list[str]) -> dict[str, Tally]:
    """Per provider, over the deliveries of these residents."""
    tallies: dict[str, Tally] = {}
    for i in range(0, len(rids), CHUNK):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[i:i + CHUNK]:
            pipe.hmget(keys.delivery(aid, rid), "p", "h")
        for plan, lines in await pipe.execute():
            if plan is not None:
                read_history(orjson.loads(plan), deliveries.history_lines(lines), tallies)
    return tallies


async def recent_alerts(redis, hours: float, limit: int) -> list[str]:
    since = now_ms() - int(hours * 3600_000)
    return [text(a) for a in await redis.zrevrangebyscore(keys.ALERTS, "+inf", since, start=0, num=limit)]


async def health(redis, hours: float = 24, limit: int = 20) -> tuple[list[Tally], int]:
    """Every provider over the alerts of the last `hours`, busiest first; and the number of alerts read."""
    total: dict[str, Tally] = {}
    aids = await recent_alerts(redis, hours, limit)
    for aid in aids:
        for name, tally in (await alert_tallies(redis, aid, SAMPLE // 4))[0].items():
            total.setdefault(name, Tally(name)).merge(tally)
    return sorted(total.values(), key=lambda t: -t.attempts), len(aids)


def quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
