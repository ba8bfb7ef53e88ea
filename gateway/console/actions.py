"""What an operator can do to an alert: cancel it, reopen its unreached on
other channels (gateway/reopen.py), record a welfare visit.  The views audit
each; these only act.
"""

from __future__ import annotations

import orjson

from .. import keys
from ..lifecycle import Lifecycle
from ..transitions import now_ms

NOTE_MAX = 500


class ActionError(ValueError):
    pass


async def cancel(state: dict, aid: str) -> bool:
    """Cancel the alert as POST /v1/alerts/{id}/cancel does (update rounds
    included); True if it was still running."""
    redis = state["redis"]
    running = await redis.hget(keys.alert(aid), "status") in (b"planning", b"active")
    await Lifecycle(redis, state["dispatch"]).cancel(aid)
    return running


async def welfare_visit(redis, aid: str, rid: str, who: str, note: str) -> None:
    if not await redis.exists(keys.delivery(aid, rid)):
        raise ActionError("that resident is not in this alert's audience")
    visit = {"by": who, "at_ms": now_ms(), "note": note.strip()[:NOTE_MAX]}
    await redis.hset(keys.welfare(aid), rid, orjson.dumps(visit))
