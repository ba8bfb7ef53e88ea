"""How an alert's deliveries went: the flow through the plan's steps and the
time each confirmation took.  Read from the delivery hashes, whole, when an
operator looks; nothing here is kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson

from .. import deliveries, keys
from ..transitions import STATES, text

CHUNK = 2000
# Where a delivery ends at its current step, by delivery state.
FATE = {"confirmed": "confirmed", "planned": "waiting", "in_progress": "waiting", "unreachable": "ended",
        "cancelled": "closed", "expired": "closed", "opted_out": "closed"}


@dataclass
class Stage:
    """Residents who reached step `step` on `channels`, and where they went from it."""

    step: int
    channels: str
    entered: int = 0
    confirmed: int = 0
    onward: int = 0
    waiting: int = 0
    ended: int = 0
    closed: int = 0


@dataclass
class Outcomes:
    created_ms: int
    stages: dict[tuple[int, str], Stage] = field(default_factory=dict)
    # (step, channels, next channels) -> residents who moved on that way.
    links: Counter = field(default_factory=Counter)
    # Deliveries that never started a step, by state (no usable contact, opted out).
    unstarted: Counter = field(default_factory=Counter)
    # Confirming channel -> seconds from the alert to each confirmation, ascending.
    ttc: dict[str, list[float]] = field(default_factory=dict)

    @property
    def columns(self) -> list[list[Stage]]:
        width = 1 + max((s.step for s in self.stages.values()), default=-1)
        cols: list[list[Stage]] = [[] for _ in range(width)]
        for stage in self.stages.values():
            cols[stage.step].append(stage)
        return [sorted(c, key=lambda s: (-s.entered, s.channels)) for c in cols]


def label(step: dict) -> str:
    return "+".join(dict.fromkeys(leg[0] for leg in step["l"]))


async def rids(redis, aid: str, states=STATES) -> list[str]:
    return [rid for page in (await deliveries.in_states(redis, aid, states)).values() for rid in page]


async def scan(redis, aid: str, residents: list[str] | None = None) -> Outcomes:
    """Every delivery of the alert, or those of `residents`."""
    created = int(await redis.hget(keys.alert(aid), "created_ms") or 0)
    out = Outcomes(created)
    ttc: dict[str, list[float]] = {}
    everyone = await rids(redis, aid) if residents is None else residents
    for i in range(0, len(everyone), CHUNK):
        pipe = redis.pipeline(transaction=False)
        for rid in everyone[i:i + CHUNK]:
            pipe.hmget(keys.delivery(aid, rid), "s", "k", "p", "y", "e", "c")
        for s, k, p, y, e, claimed in await pipe.execute():
            if s is None:
                continue
            add(out, text(s), int(k), orjson.loads(p), claimed is not None)
            if s == b"confirmed" and y and e:
                ttc.setdefault(text(y).split(":")[0], []).append(max(0.0, (int(e) - created) / 1000))
    out.ttc = {ch: sorted(v) for ch, v in sorted(ttc.items())}
    return out


def add(out: Outcomes, state: str, k: int, plan: list, started: bool) -> None:
    """One delivery's path: every step before `k` passed it on; step `k` holds its fate."""
    if not plan or (not started and k == 0 and state not in ("planned", "confirmed")):
        out.unstarted[state] += 1
        return
    labels = [label(step) for step in plan[:k + 1]]
    for i, name in enumerate(labels):
        stage = out.stages.setdefault((i, name), Stage(i, name))
        stage.entered += 1
        if i < k:
            stage.onward += 1
            out.links[(i, name, labels[i + 1])] += 1
        else:
            fate = FATE[state]
            setattr(stage, fate, getattr(stage, fate) + 1)


def median(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
