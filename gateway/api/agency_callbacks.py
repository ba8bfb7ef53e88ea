"""`/v1/agency`: the calling agency itself, its callback URL and dead letters.

What the callbacks carry, how they are signed and retried: gateway/callbacks.py.
"""

from __future__ import annotations

from aiohttp import web

from .. import callbacks
from ..agencies import (
    CALLBACK_SECRET_MIN,
    callback_problem,
    get_callback,
    remove_callback,
    set_callback,
)
from ..problems import Problem, check, invalid
from .http import STATE, json_body, json_response, require
from ..schemas import INTEGER, STRING, STRINGS, record
from .routing import Route, returns

CALLBACK = {
    "$id": "AgencyCallback",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri", "maxLength": 2048},
        # Leave out to have the gateway make one (returned once).
        "secret": {"type": "string", "minLength": CALLBACK_SECRET_MIN, "maxLength": 256},
    },
}

REPLAY = {
    "$id": "CallbackReplay",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ids": {"type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 64}},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
}


async def get_agency_info(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:read")
    callback = await get_callback(request.app[STATE]["redis"], agency.id)
    return json_response({
        "id": agency.id, "name": agency.name, "scopes": sorted(agency.scopes),
        "area": {"districts": sorted(agency.districts), "polygons": [list(map(list, r)) for r in agency.areas]},
        "callback": {"url": callback[0]} if callback else None,
    })


async def put_callback(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:write")
    body = await json_body(request)
    check(CALLBACK, body)
    problem = await callback_problem(body["url"], request.app[STATE]["egress"])
    if problem:
        raise invalid([{"field": "/url", "detail": problem}])
    secret = await set_callback(request.app[STATE]["redis"], agency.id, body["url"], body.get("secret"))
    out = {"url": body["url"], "signature": "X-Gateway-Signature: v1=<hex HMAC-SHA256 of "
                                             "'<X-Gateway-Timestamp>.<body>'>"}
    if "secret" not in body:
        out["secret"] = secret  # shown this once
    return json_response(out)


async def delete_callback(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:write")
    await remove_callback(request.app[STATE]["redis"], agency.id)
    return web.Response(status=204)


async def list_dead(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:read")
    try:
        limit = int(request.query.get("limit", 100))
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        raise invalid([{"field": "limit", "detail": "an integer 1-1000"}]) from None
    letters = await callbacks.dead_letters(request.app[STATE]["redis"], agency.id, limit)
    return json_response({"dead_letters": letters})


async def replay_dead(request: web.Request) -> web.Response:
    """Each chosen dead letter is sent once more, now; those your URL takes leave the list."""
    agency = await require(request, "alerts:write")
    body = await json_body(request) if request.can_read_body else {}
    check(REPLAY, body)
    redis = request.app[STATE]["redis"]
    if await get_callback(redis, agency.id) is None:
        raise Problem(409, "No callback URL", "Register one with PUT /v1/agency/callback first.")
    result = await callbacks.replay(redis, request.app[STATE]["egress"], agency.id, body.get("ids"),
                                    body.get("limit", 100))
    return json_response(result)


AGENCY = record({"id": STRING, "name": STRING, "scopes": STRINGS,
                 "area": record({"districts": STRINGS, "polygons": {"type": "array", "items": {
                     "type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}),
                 "callback": {"anyOf": [record({"url": STRING}), {"type": "null"}]}})
REGISTERED = record({"url": STRING, "signature": STRING}, {"secret": STRING})
DEAD_LETTERS = record({"dead_letters": {"type": "array", "items": record(
    {"id": STRING, "alert": STRING, "url": STRING, "attempts": INTEGER, "failed_at": STRING,
     "last_error": STRING, "events": {"type": "array", "items": {"type": "object"}}})}})
REPLAYED = record({"replayed": INTEGER, "failed": INTEGER, "errors": STRINGS}, {"remaining": INTEGER})

ROUTES = [
    Route("GET", "/v1/agency", get_agency_info, "This agency: scopes, area, callback URL", "alerts:read",
          responses={200: returns("The agency", AGENCY)}),
    Route("PUT", "/v1/agency/callback", put_callback,
          "Register the URL that hears of every delivery and of each alert's progress (signed)", "alerts:write",
          body={"application/json": CALLBACK},
          responses={200: returns("Registered; `secret` only when the gateway made it", REGISTERED)}),
    Route("DELETE", "/v1/agency/callback", delete_callback, "Stop callbacks", "alerts:write",
          responses={204: "Removed"}),
    Route("GET", "/v1/agency/callbacks/dead", list_dead, "Callback batches that failed every retry, newest first",
          "alerts:read", query={"limit": ("How many", {"type": "integer", "minimum": 1, "maximum": 1000})},
          responses={200: returns("Newest first", DEAD_LETTERS)}),
    Route("POST", "/v1/agency/callbacks/dead/replay", replay_dead, "Send dead letters again (oldest first)",
          "alerts:write", body={"application/json": REPLAY},
          responses={200: returns("What was sent and what failed again", REPLAYED),
                     409: "No callback URL is registered"}),
]
