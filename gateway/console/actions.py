"""What an operator can do to an alert: cancel it, retry its unreached on one
channel, record a welfare visit.  The views audit each; these only act.

A retry is a follow-up alert: the same content, for the unreachable residents
who have a usable contact point for the chosen channel, with a one-step plan
on that channel.  It runs through the engine like any alert (fan-out, claim,
timers, confirmation), so it needs no engine change; the console links the
two and shows each resident's state in the follow-up.  Reopening the first
delivery in place would need a `reopen` operation in transitions.lua.
"""

from __future__ import annotations

import orjson

from .. import deliveries, keys
from ..alerts import Alerts
from ..lifecycle import Lifecycle
from ..plan import Policy, build_plan
from ..registry import profile
from ..transitions import now_ms, text
from . import keys as ops_keys

NOTE_MAX = 500


class ActionError(ValueError):
    pass


async def cancel(state: dict, aid: str) -> list[str]:
    """Cancel the alert and its follow-ups, each as POST /v1/alerts/{id}/cancel does
    (update rounds included); the ids that were still running."""
    redis = state["redis"]
    lifecycle = Lifecycle(redis, state["dispatch"])
    running = []
    for target in [aid, *(text(f) for f in await redis.lrange(ops_keys.follow_ups(aid), 0, -1))]:
        if await redis.hget(keys.alert(target), "status") in (b"planning", b"active"):
            running.append(target)
        await lifecycle.cancel(target)
    return running


async def retry(state: dict, aid: str, channel: str) -> tuple[str | None, int]:
    """A follow-up alert on `channel` for the unreachable who can get it: (its id, residents), or (None, 0)."""
    redis, engine = state["redis"], state["engine"]
    meta = await Alerts(redis).get(aid)
    if meta is None:
        raise ActionError("no such alert")
    if meta["status"] == "cancelled":
        raise ActionError("the alert was cancelled")
    if 0 < int(meta.get("expires_ms") or 0) <= now_ms():
        raise ActionError("the alert has expired")
    specs = engine.specs()
    if channel not in specs:
        raise ActionError(f"{channel} is not available")
    doc = meta["doc"]
    policy_doc = {**doc.get("policy", {}), "channels": [channel], "parallel_first": False}
    policy = Policy.from_alert({**doc, "policy": policy_doc})
    rids = await deliveries.residents_in(redis, aid, "unreachable")
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(keys.resident(rid), "p", "x")
    eligible = [rid for rid, (p, x) in zip(rids, await pipe.execute())
                if p is not None and build_plan(profile({b"p": p, b"x": x}), policy, specs)]
    if not eligible:
        return None, 0
    follow_doc = {**doc, "audience": {"residents": eligible}, "policy": policy_doc}
    fid, _ = await Alerts(redis).create(meta["agency"], follow_doc, None)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.alert(fid), "follow_up_of", aid)
    pipe.rpush(ops_keys.follow_ups(aid), fid)
    await pipe.execute()
    state["dispatch"].fan_out(fid)
    return fid, len(eligible)


async def welfare_visit(redis, aid: str, rid: str, who: str, note: str) -> None:
    if not await redis.exists(keys.delivery(aid, rid)):
        raise ActionError("that resident is not in this alert's audience")
    visit = {"by": who, "at_ms": now_ms(), "note": note.strip()[:NOTE_MAX]}
    await redis.hset(ops_keys.welfare(aid), rid, orjson.dumps(visit))
