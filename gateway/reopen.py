"""Retry in place: an operator (or the agency) reopens an alert's unreachable
deliveries on channels or contact points their plan did not try.

Each delivery keeps its place in the alert: `op reopen` in transitions.lua
appends the new steps to its plan and moves it back in progress, so the
alert's figures stay one story (targeted does not grow; unreachable falls
as confirmed rises) and the history shows who reopened it and when.  A
delivery reopened already is in progress, so a second click sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from . import deliveries, keys
from .alerts import Alerts
from .fallback import Policy, build_plan, turn_of
from .registry import profile
from .transitions import now_ms, text

CHUNK = 500


class CannotReopen(ValueError):
    """Why nothing was reopened, in words an operator reads; `field` names the bad input."""

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.field = field


@dataclass
class Reopened:
    reopened: int = 0
    # Unreachable residents with no channel or contact point left to try.
    nothing_new: int = 0


async def reopen_unreached(redis, engine, dispatch, aid: str, channels: list[str] | None = None, *,
                           again: bool = False, who: str = "") -> Reopened:
    """Reopen every unreachable delivery of `aid` on `channels` (default: all
    its severity allows), on legs its plan did not try; `again` also tries those."""
    meta = await Alerts(redis).get(aid)
    if meta is None:
        raise CannotReopen("no such alert")
    if meta["status"] in ("cancelled", "expired") or 0 < int(meta.get("expires_ms") or 0) <= now_ms():
        raise CannotReopen(f"the alert has {'expired' if meta['status'] != 'cancelled' else 'been cancelled'}")
    specs = engine.specs()
    missing = [c for c in channels or () if c not in specs]
    if missing:
        raise CannotReopen(f"{', '.join(missing)} is not available", "channels")
    doc = meta["doc"]
    # Without a choice, every channel the severity table allows: an alert
    # narrowed to SMS may now reach its unreached by a call.
    policy_doc = {**doc.get("policy", {}), "parallel_first": False}
    policy_doc.pop("channels", None)
    if channels:
        policy_doc["channels"] = channels
    policy = Policy.from_alert({**doc, "policy": policy_doc})
    out = Reopened()
    rids = await deliveries.residents_in(redis, aid, "unreachable")
    for start in range(0, len(rids), CHUNK):
        items = await _new_steps(redis, aid, rids[start:start + CHUNK], policy, specs, again)
        out.nothing_new += min(CHUNK, len(rids) - start) - len(items)
        if not items:
            continue
        pipe = redis.pipeline(transaction=False)
        replies = await engine.t.reopen(pipe, aid, items, who)
        sends = []
        for (rid, _), res in zip(items, replies.of(await pipe.execute())):
            res = text(res)
            if res == "closed":
                raise CannotReopen("the alert ended meanwhile")
            if res.startswith("reopened:"):
                sends.append((rid, int(res[9:]), 0))
        if sends:
            dispatch.send_steps(aid, sends, turn_of(doc))
            out.reopened += len(sends)
    return out


async def _new_steps(redis, aid: str, rids: list[str], policy: Policy, specs, again: bool
                     ) -> list[tuple[str, list]]:
    """(resident, steps to append) for those with something to try."""
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(keys.resident(rid), "p", "x")
        pipe.hget(keys.delivery(aid, rid), "p")
    res = await pipe.execute()
    items = []
    for rid, (p, x), old in zip(rids, res[::2], res[1::2]):
        if p is None or old is None:  # erased since
            continue
        tried = {tuple(leg) for step in orjson.loads(old) for leg in step["l"]}
        steps = [s for s in build_plan(profile({b"p": p, b"x": x}), policy, specs)
                 if again or tuple(s["l"][0]) not in tried]
        if steps:
            items.append((rid, steps))
    return items
