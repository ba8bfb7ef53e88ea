"""How old each contact point's proof is: when it last confirmed a delivery.

Contact data goes stale silently (a number given to someone else, a family
that moved): a failure marks a point dead, but one that is merely never
answered tells nothing.  So the resident hash keeps, per contact point, when
a step on it last confirmed, or when the agency registered it if it never
has (field `lc`: JSON [[identity, ms], ...], parallel to the contacts).  An
agency that sends the same point again keeps its age; a new one starts
afresh.  Older than GATEWAY_CONTACT_STALE_DAYS is stale: the reach report
counts who has nothing fresher, and a re-verification campaign
(gateway/reverify.py) asks on exactly those points.
"""

from __future__ import annotations

import orjson

from .transitions import contact_confirmed, now_ms

DAY_MS = 86_400_000


def identity(vault, contact: dict) -> str:
    """A keyed hash of what the contact point is (number, token, address), so its age survives a replace."""
    return vault.lookup_hash(orjson.dumps(contact, option=orjson.OPT_SORT_KEYS).decode())


def carried_over(vault, contacts: list[dict], old: bytes | None, now: int | None = None) -> bytes:
    """`lc` for a resident (re)registered with `contacts`: ages of points seen before are kept."""
    known = {digest: ms for digest, ms in orjson.loads(old)} if old else {}
    now = now or now_ms()
    return orjson.dumps([[d, known.get(d, now)] for d in (identity(vault, cp) for cp in contacts)])


def ages_ms(raw: bytes | None) -> list[int]:
    """When each contact point last confirmed (or was registered), ms since the epoch; [] if unknown."""
    return [ms for _, ms in orjson.loads(raw)] if raw else []


def stale(raw: bytes | None, stale_days: float, now: int | None = None) -> frozenset[int]:
    """Indexes of the contact points older than `stale_days`."""
    cutoff = (now or now_ms()) - stale_days * DAY_MS
    return frozenset(i for i, ms in enumerate(ages_ms(raw)) if ms < cutoff)


async def confirmed(redis, points: list[tuple[str, int]], at_ms: int | None = None) -> None:
    """(resident, contact index) of each step that just confirmed: that point is fresh."""
    if not points:
        return
    pipe = redis.pipeline(transaction=False)
    for rid, index in points:
        contact_confirmed(pipe, rid, index, at_ms or now_ms())
    await pipe.execute()
