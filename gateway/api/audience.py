"""`/v1/audience/preview`: whom an audience reaches and how, before posting.

Answers from the in-process `ResidentIndex` (gateway/geo.py): a numpy pass
over every resident, shapely on those near the shapes, and one
`build_plan` per kind of resident (same needs, contact kinds, dead contacts,
consents), not per resident. What an agency may target is gateway/validate.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import orjson
from aiohttp import web

from ..fallback import Contact, Policy, Profile, build_plan, initial_state, quiet_until
from ..geo import ResidentIndex, Snapshot
from ..problems import check
from ..schemas import ALERT, COUNTS, INTEGER, STRING, STRINGS, record
from ..validate import validate_audience
from .http import STATE, json_body, json_response, require
from .routing import Route, returns

log = logging.getLogger("gateway.api.audience")

_A = ALERT["properties"]
PREVIEW = {
    "$id": "AudiencePreview",
    "type": "object",
    "additionalProperties": False,
    "required": ["audience"],
    "properties": {
        "audience": _A["audience"],
        "severity": _A["severity"],
        "urgency": _A["urgency"],
        "status": _A["status"],
        "policy": _A["policy"],
    },
}


# The index, one per API process ---------------------------------------------------


def index_of(app: web.Application) -> ResidentIndex:
    state = app[STATE]
    if "resident_index" not in state:
        state["resident_index"] = ResidentIndex(state["redis"])
    return state["resident_index"]


INDEX_REFRESH_S = 1.0


async def warm_index(app: web.Application) -> None:
    """Build the index at start and keep it current in the background, so a
    preview (even the first after a bulk import) finds it ready."""
    stop = app[STATE]["resident_index_stop"] = asyncio.Event()

    async def keep_fresh():
        while not stop.is_set():
            try:
                await index_of(app).snapshot()
            except Exception:
                log.exception("refreshing the resident index failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), INDEX_REFRESH_S)
    app[STATE]["resident_index_warm"] = asyncio.get_running_loop().create_task(keep_fresh())


async def stop_index(app: web.Application) -> None:
    task = app[STATE].get("resident_index_warm")
    if task:
        # Told first: on Python 3.11 a cancel can be lost inside redis-py (tests/test_stopping.py).
        app[STATE]["resident_index_stop"].set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# The preview ----------------------------------------------------------------------------


def _profile(kind: tuple) -> Profile:
    needs, contacts, dead, non_emergency, _, _ = kind
    return Profile(languages=("und",), contacts=tuple(Contact(t, h) for t, h in contacts),
                   needs=frozenset(needs), dead=frozenset(dead), non_emergency=non_emergency)


def _how(kind: tuple, steps: list) -> tuple[str, str]:
    """(first-step label, a phrase for people) for residents of one kind."""
    first = list(dict.fromkeys(leg[0] for leg in steps[0]["l"]))
    label = "+".join(first)
    channels = {leg[0] for step in steps for leg in step["l"]}
    handsets = {h for t, h in kind[1] if t == "phone"}
    if len(first) > 1:
        return label, "by push and SMS together" if set(first) == {"push", "sms"} else f"by {label} together"
    ch = first[0]
    if ch == "sms" and "feature_phone" in handsets:
        return label, "feature phones by SMS"
    if ch == "voice" and handsets == {"landline"}:
        return label, "landline-only by voice"
    if channels == {ch}:
        return label, f"by {_name(ch)} only"
    return label, f"by {_name(ch)} first"


def _name(channel: str) -> str:
    return {"sms": "SMS"}.get(channel, channel)


def reach(snap: Snapshot, mask: np.ndarray, policy: Policy, specs: dict, now: datetime) -> dict:
    """Counts of the residents in `mask`: by district, by how they would first be reached."""
    counts = np.bincount(snap.kind[mask], minlength=len(snap.kinds))
    by_first: Counter = Counter()
    phrases: Counter = Counter()
    unreachable = opted_out = held = 0
    for kind_id in np.flatnonzero(counts):
        n, kind = int(counts[kind_id]), snap.kinds[kind_id]
        prof = _profile(kind)
        steps = build_plan(prof, policy, specs)
        state = initial_state(prof, policy, steps)
        if state == "opted_out":
            opted_out += n
        elif state == "unreachable":
            unreachable += n
        else:
            label, phrase = _how(kind, steps)
            by_first[label] += n
            phrases[phrase] += n
            if policy.quiet_hours and kind[5] and quiet_until(orjson.loads(kind[5]), now):
                held += n
    districts = np.bincount(snap.district[mask], minlength=len(snap.districts))
    total = int(mask.sum())
    parts = [f"{n:,} {phrase}" for phrase, n in phrases.most_common()]
    if unreachable:
        parts.append(f"{unreachable:,} unreachable")
    if opted_out:
        parts.append(f"{opted_out:,} opted out of non-emergency alerts")
    out = {
        "targeted": total,
        "reachable": total - unreachable - opted_out,
        "unreachable": unreachable,
        "opted_out": opted_out,
        "by_first_channel": dict(by_first.most_common()),
        "by_district": {snap.districts[i]: int(n) for i, n in enumerate(districts) if n},
        "without_location": int((mask & np.isnan(snap.lat)).sum()),
        "summary": ", ".join(parts) if parts else "nobody",
        "channels": sorted(specs),
    }
    if policy.quiet_hours:
        out["held_for_quiet_hours"] = held
    return out


async def preview(request: web.Request) -> web.Response:
    started = time.perf_counter()
    agency = await require(request, "alerts:write")
    body = await json_body(request)
    check(PREVIEW, body)
    audience = body["audience"]
    await validate_audience(agency, audience, index_of(request.app))
    snap = await index_of(request.app).snapshot()
    mask = snap.audience_mask(audience)
    drill = body.get("status", "Actual") != "Actual"
    if drill:
        mask &= snap.drill_volunteers()
    area = agency.area()
    if area.limited:
        mask &= area.holds(snap.district, snap.districts, snap.lat, snap.lon)
    policy = Policy.from_alert({"severity": body.get("severity", "Moderate"), "urgency": body.get("urgency"),
                                "policy": body.get("policy", {})})
    out = reach(snap, mask, policy, request.app[STATE]["engine"].specs(), datetime.now(timezone.utc))
    if drill:
        out["drill"] = body["status"]
    out["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return json_response(out)


REACH = record({"targeted": INTEGER, "reachable": INTEGER, "unreachable": INTEGER, "opted_out": INTEGER,
                "by_first_channel": COUNTS, "by_district": COUNTS, "without_location": INTEGER,
                "summary": STRING, "channels": STRINGS, "took_ms": {"type": "number"}},
               {"held_for_quiet_hours": INTEGER, "drill": STRING})

ROUTES = [
    Route("POST", "/v1/audience/preview", preview,
          "How many residents an audience reaches, by district and by first channel (nothing is sent)",
          "alerts:write", body={"application/json": PREVIEW}, responses={200: returns("Who it would reach, how", REACH)}),
]
