"""Is this an alert an agency may post? One answer, for JSON and CAP alike.

The API calls `validate(agency, document, residents)` once per alert (a CAP
message is first read into the same JSON document, gateway/cap/parse.py):
the document's own rules first (schema, areas, response options, expiry),
then whether everything it targets is the agency's to reach. Every problem
is `{"field": json-pointer, "detail": ...}`; any problem is one 422 naming
them all, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import keys
from .agencies import Agency
from .geo import DISTRICT_GEOCODES, ResidentIndex, Targets, audience_problems
from .problems import field_errors, invalid
from .schemas import ALERT
from .transitions import now_ms

NO_SUCH_RESIDENT = "no such resident in your agency's area"


async def validate(agency: Agency, document: Any, residents: ResidentIndex) -> dict:
    """The alert, valid and inside the agency's area, or a 422 naming every bad field."""
    errors = alert_problems(document)
    if not errors:
        errors = await reach_problems(agency, document["audience"], residents)
    if errors:
        raise invalid(errors)
    return document


async def validate_audience(agency: Agency, audience: dict, residents: ResidentIndex) -> None:
    """An audience alone (for a preview, after its schema): its areas' rules and the agency's reach."""
    errors = audience_problems(audience) + await reach_problems(agency, audience, residents)
    if errors:
        raise invalid(errors)


def alert_problems(document: Any) -> list[dict]:
    """The alert's own rules, whoever posts it."""
    errors = field_errors(ALERT, document)
    if errors:
        return errors  # the rules below read a well-formed alert
    errors = audience_problems(document["audience"])
    langs = set(document["content"])
    for i, opt in enumerate(document.get("response_options", [])):
        if opt["code"] == "1":
            errors.append({"field": f"/response_options/{i}/code", "detail": "1 is kept for 'I got this'"})
        for lang in opt["label"]:
            if lang not in langs:
                errors.append({"field": f"/response_options/{i}/label/{lang}", "detail": "no content in that language"})
    if "expires" in document:
        expires = datetime.fromisoformat(document["expires"].replace("Z", "+00:00"))
        if expires.tzinfo is None:
            errors.append({"field": "/expires", "detail": "needs a UTC offset"})
        elif expires.timestamp() * 1000 <= now_ms():
            errors.append({"field": "/expires", "detail": "is in the past"})
    return errors


async def reach_problems(agency: Agency, audience: dict, residents: ResidentIndex) -> list[dict]:
    """An agency may target only its own area: every target it may not reach."""
    errors = []
    if audience.get("residents"):
        for i in await _unknown_residents(residents.redis, audience["residents"]):
            errors.append({"field": f"/audience/residents/{i}", "detail": NO_SUCH_RESIDENT})
    area = agency.area()
    if not area.limited:
        return errors
    drawn = " (your agency's area is drawn as polygons: target it with polygons or circles)" \
        if not area.districts else ""
    if audience.get("everyone"):
        errors.append({"field": "/audience/everyone", "detail": "your agency may target only its own area"})
    for i, code in enumerate(audience.get("districts", [])):
        if code not in area.districts:
            errors.append({"field": f"/audience/districts/{i}", "detail": "outside your agency's area" + drawn})
    snap = None
    areas = audience.get("areas", [])
    targets = Targets.of(areas)
    for i, area_ in enumerate(areas):
        if "geocode" in area_ and area_["geocode"]["name"] in DISTRICT_GEOCODES \
                and area_["geocode"]["value"] not in area.districts:
            errors.append({"field": f"/audience/areas/{i}/geocode/value",
                           "detail": "outside your agency's area" + drawn})
    for shape in targets.shapes:
        if area.covers_shape(shape):
            continue
        if not area.districts:
            errors.append({"field": f"/audience/areas/{shape.index}/{shape.kind}",
                           "detail": "reaches outside your agency's area"})
            continue
        # Districts have no drawn border here: a shape is inside if everyone it reaches lives inside.
        snap = snap or await residents.snapshot()
        reached = snap.shapes_mask([shape]) & snap.alive
        outside = int((reached & ~area.holds(snap.district, snap.districts, snap.lat, snap.lon)).sum())
        if outside:
            people = f"{outside} resident" + ("s" if outside != 1 else "")
            errors.append({"field": f"/audience/areas/{shape.index}/{shape.kind}",
                           "detail": f"reaches {people} outside your agency's area"})
    if audience.get("residents") and not errors:
        snap = snap or await residents.snapshot()
        inside = area.holds(snap.district, snap.districts, snap.lat, snap.lon)
        for i, rid in enumerate(audience["residents"]):
            pos = snap.positions.get(rid)
            if pos is not None and pos < len(inside) and not inside[pos]:
                # Said as of an unknown id: a resident outside is not the agency's to know of.
                errors.append({"field": f"/audience/residents/{i}", "detail": NO_SUCH_RESIDENT})
    return errors


async def _unknown_residents(redis, ids: list[str]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.exists(keys.resident(rid))
    return [i for i, found in enumerate(await pipe.execute()) if not found]
