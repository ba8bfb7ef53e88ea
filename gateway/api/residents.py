"""`/v1/residents`: the registry, one resident or a whole file at once."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from ..problems import Problem, invalid
from ..registry import check_import, normalise, parse_import, sort_import
from ..schemas import RESIDENT, STORED_RESIDENT, STRING, record
from .http import STATE, json_body, json_response, require
from .routing import Route, returns

IMPORT_TYPES = {"application/x-ndjson": "ndjson", "application/ndjson": "ndjson", "text/csv": "csv"}


async def put_resident(request: web.Request) -> web.Response:
    await require(request, "residents:write")
    doc = await json_body(request)
    rid = request.match_info["rid"]
    if isinstance(doc, dict) and doc.get("id", rid) != rid:
        raise invalid([{"field": "/id", "detail": "differs from the id in the path"}])
    if isinstance(doc, dict):
        doc = {"id": rid, **doc}
    resident, errors = normalise(doc)
    if errors:
        raise invalid(errors)
    registry = request.app[STATE]["engine"].registry
    existed = await registry.get(rid) is not None
    await registry.put_many([resident])
    return json_response(await registry.get(rid), status=200 if existed else 201)


async def get_resident(request: web.Request) -> web.Response:
    await require(request, "residents:write")
    resident = await request.app[STATE]["engine"].registry.get(request.match_info["rid"])
    if resident is None:
        raise Problem(404, "Not found", "No resident with that id.")
    return json_response(resident)


async def delete_resident(request: web.Request) -> web.Response:
    await require(request, "residents:write")
    if not await request.app[STATE]["engine"].registry.delete(request.match_info["rid"]):
        raise Problem(404, "Not found", "No resident with that id.")
    return web.Response(status=204)


BAD_ROWS = ("refuse", "skip")


async def import_residents(request: web.Request) -> web.Response:
    """NDJSON or CSV. All or nothing by default: one bad line and nothing is imported.
    With `bad_rows=skip` the good lines land and each bad one is named. Either way a
    resident that is already stored as the file says is left alone, so a re-run writes nothing."""
    await require(request, "residents:write")
    bad_rows = request.query.get("bad_rows", "refuse")
    if bad_rows not in BAD_ROWS:
        raise invalid([{"field": "bad_rows", "detail": f"one of {list(BAD_ROWS)}"}])
    fmt = IMPORT_TYPES.get(request.content_type)
    if fmt is None:
        raise Problem(415, "Unsupported media type", "Send application/x-ndjson or text/csv.",
                      errors=[{"field": "Content-Type", "detail": f"{request.content_type} is not accepted"}])
    records = parse_import(await request.read(), fmt)
    if bad_rows == "refuse":
        residents, errors = check_import(records), []
    else:
        residents, errors = sort_import(records)
    registry = request.app[STATE]["engine"].registry
    counts = Counter()
    for i in range(0, len(residents), 1000):
        counts += await registry.import_many(residents[i:i + 1000])
    body = {"imported": len(residents), "created": counts["created"], "updated": counts["updated"],
            "unchanged": counts["unchanged"]}
    if bad_rows == "skip":
        body |= {"bad_lines": len({e["line"] for e in errors}), "errors": errors}
    return json_response(body)


_COUNT = {"type": "integer", "minimum": 0}
IMPORTED = record({"imported": _COUNT, "created": _COUNT, "updated": _COUNT, "unchanged": _COUNT},
                  {"bad_lines": _COUNT, "errors": {"type": "array", "items": record(
                      {"line": _COUNT, "field": STRING, "detail": STRING})}})


ROUTES = [
    Route("PUT", "/v1/residents/{rid}", put_resident, "Create or replace a resident", "residents:write",
          body={"application/json": RESIDENT}, responses={200: returns("Replaced", STORED_RESIDENT), 201: returns("Created", STORED_RESIDENT)}),
    Route("GET", "/v1/residents/{rid}", get_resident, "A resident, contact points opened", "residents:write",
          responses={200: returns("The resident", STORED_RESIDENT)}),
    Route("DELETE", "/v1/residents/{rid}", delete_resident, "Erase a resident and their contact data",
          "residents:write", responses={204: "Erased"}),
    Route("POST", "/v1/residents/import", import_residents,
          "Bulk import (NDJSON or CSV): all or nothing, or with bad_rows=skip the good lines", "residents:write",
          body={"application/x-ndjson": {"type": "string"}, "text/csv": {"type": "string"}},
          query={"bad_rows": ("refuse (default): one bad line and nothing is imported (a 422 naming each); "
                              "skip: the good lines land and `errors` names each bad line and field",
                              {"enum": list(BAD_ROWS)})},
          responses={200: returns("Imported: how many were new, changed, or already so", IMPORTED)}),
]
