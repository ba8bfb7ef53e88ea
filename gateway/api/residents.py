"""`/v1/residents`: the registry, one resident or a whole file at once.

The registry is one per city and shared by its agencies. A resident belongs
to every agency whose area holds their home (their district, or their point
inside the agency's polygons); a city-wide agency's area holds everyone.
Only those agencies may read, replace or erase the resident: to any other,
the resident does not exist (404, never 403, which would say they do). An
agency registers residents only inside its area. Every erasure is audited.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from .. import reverify
from ..agencies import Agency
from ..console.auth import audit
from ..problems import Problem, check, invalid
from ..registry import check_import, normalise, parse_import, sort_import
from ..schemas import RESIDENT, REVERIFY, STORED_RESIDENT, STRING, record
from .http import STATE, json_body, json_response, require
from .routing import Route, returns

IMPORT_TYPES = {"application/x-ndjson": "ndjson", "application/ndjson": "ndjson", "text/csv": "csv"}


def _not_found() -> Problem:
    return Problem(404, "Not found", "No resident with that id in your agency's area.")


async def _own(request: web.Request, agency: Agency, rid: str) -> bool:
    """Whether the resident exists; a 404 if they live outside the agency's area."""
    home = (await request.app[STATE]["engine"].registry.homes([rid]))[rid]
    if home is not None and not agency.holds(*home):
        raise _not_found()
    return home is not None


async def put_resident(request: web.Request) -> web.Response:
    agency = await require(request, "residents:write")
    doc = await json_body(request)
    rid = request.match_info["rid"]
    if isinstance(doc, dict) and doc.get("id", rid) != rid:
        raise invalid([{"field": "/id", "detail": "differs from the id in the path"}])
    if isinstance(doc, dict):
        doc = {"id": rid, **doc}
    resident, errors = normalise(doc)
    if errors:
        raise invalid(errors)
    existed = await _own(request, agency, rid)
    outside = agency.outside_problems(resident)
    if outside:
        raise invalid(outside)
    registry = request.app[STATE]["engine"].registry
    await registry.put_many([resident])
    return json_response(await registry.get(rid), status=200 if existed else 201)


async def get_resident(request: web.Request) -> web.Response:
    agency = await require(request, "residents:write")
    rid = request.match_info["rid"]
    resident = await request.app[STATE]["engine"].registry.get(rid) if await _own(request, agency, rid) else None
    if resident is None:
        raise _not_found()
    return json_response(resident)


async def delete_resident(request: web.Request) -> web.Response:
    agency = await require(request, "residents:write")
    rid = request.match_info["rid"]
    if not await _own(request, agency, rid) or not await request.app[STATE]["engine"].registry.delete(rid):
        raise _not_found()
    await audit(request.app[STATE]["redis"], f"agency {agency.name} ({agency.id})", "erase resident", rid)
    return web.Response(status=204)


BAD_ROWS = ("refuse", "skip")


async def import_residents(request: web.Request) -> web.Response:
    """NDJSON or CSV, into the agency's area. All or nothing by default: one bad line
    and nothing is imported. With `bad_rows=skip` the good lines land and each bad one
    is named. Either way a resident that is already stored as the file says is left
    alone, so a re-run writes nothing."""
    agency = await require(request, "residents:write")
    bad_rows = request.query.get("bad_rows", "refuse")
    if bad_rows not in BAD_ROWS:
        raise invalid([{"field": "bad_rows", "detail": f"one of {list(BAD_ROWS)}"}])
    fmt = IMPORT_TYPES.get(request.content_type)
    if fmt is None:
        raise Problem(415, "Unsupported media type", "Send application/x-ndjson or text/csv.",
                      errors=[{"field": "Content-Type", "detail": f"{request.content_type} is not accepted"}])
    records = list(parse_import(await request.read(), fmt))
    registry = request.app[STATE]["engine"].registry
    homes = {}
    if agency.area().limited:
        homes = await registry.homes(sorted({doc["id"] for _, doc in records
                                             if isinstance(doc, dict) and isinstance(doc.get("id"), str)}))

    def outside(resident: dict) -> list[dict]:
        home = homes.get(resident["id"])
        if home is not None and not agency.holds(*home):
            return [{"field": "/id", "detail": "taken by a resident outside your agency's area"}]
        return agency.outside_problems(resident)

    if bad_rows == "refuse":
        residents, errors = check_import(records, outside), []
    else:
        residents, errors = sort_import(records, outside)
    counts = Counter()
    for i in range(0, len(residents), 1000):
        counts += await registry.import_many(residents[i:i + 1000])
    body = {"imported": len(residents), "created": counts["created"], "updated": counts["updated"],
            "unchanged": counts["unchanged"]}
    if bad_rows == "skip":
        body |= {"bad_lines": len({e["line"] for e in errors}), "errors": errors}
    return json_response(body)


_COUNT = {"type": "integer", "minimum": 0}
REVERIFIED = record({"id": {"type": ["string", "null"]}, "residents": _COUNT}, {"href": STRING})
IMPORTED = record({"imported": _COUNT, "created": _COUNT, "updated": _COUNT, "unchanged": _COUNT},
                  {"bad_lines": _COUNT, "errors": {"type": "array", "items": record(
                      {"line": _COUNT, "field": STRING, "detail": STRING})}})


async def reverify_stale(request: web.Request) -> web.Response:
    """Ask residents whose numbers went stale whether they are still theirs (gateway/reverify.py)."""
    agency = await require(request, "alerts:write")
    body = await json_body(request) if request.can_read_body else {}
    check(REVERIFY, body)
    state = request.app[STATE]
    try:
        aid, count = await reverify.start(state["redis"], state["dispatch"], agency,
                                          state["settings"].contact_stale_days, frozenset(body.get("districts", ())))
    except reverify.OutsideArea as e:
        raise invalid([{"field": "/districts", "detail": str(e)}]) from None
    if aid is None:
        return json_response({"id": None, "residents": 0})
    return json_response({"id": aid, "residents": count, "href": f"/v1/alerts/{aid}"}, status=202,
                         headers={"Location": f"/v1/alerts/{aid}"})


ROUTES = [
    Route("PUT", "/v1/residents/{rid}", put_resident,
          "Create or replace a resident of your agency's area", "residents:write",
          body={"application/json": RESIDENT},
          responses={200: returns("Replaced", STORED_RESIDENT), 201: returns("Created", STORED_RESIDENT)}),
    Route("GET", "/v1/residents/{rid}", get_resident,
          "A resident of your agency's area, contact points opened", "residents:write",
          responses={200: returns("The resident", STORED_RESIDENT)}),
    Route("DELETE", "/v1/residents/{rid}", delete_resident,
          "Erase a resident of your agency's area and their contact data (audited)",
          "residents:write", responses={204: "Erased"}),
    Route("POST", "/v1/residents/reverify", reverify_stale,
          "Start a re-verification campaign: residents whose numbers are unconfirmed for "
          "GATEWAY_CONTACT_STALE_DAYS are asked to answer 1 (a Minor alert of its own)", "alerts:write",
          body={"application/json": REVERIFY},
          responses={200: returns("Nobody's number is stale: nothing sent", REVERIFIED),
                     202: returns("The campaign's alert, and residents asked", REVERIFIED)}),
    Route("POST", "/v1/residents/import", import_residents,
          "Bulk import (NDJSON or CSV) into your agency's area: all or nothing, or with bad_rows=skip the good lines",
          "residents:write",
          body={"application/x-ndjson": {"type": "string"}, "text/csv": {"type": "string"}},
          query={"bad_rows": ("refuse (default): one bad line and nothing is imported (a 422 naming each); "
                              "skip: the good lines land and `errors` names each bad line and field",
                              {"enum": list(BAD_ROWS)})},
          responses={200: returns("Imported: how many were new, changed, or already so", IMPORTED)}),
]
