"""`/v1/alerts`: post an alert (JSON or CAP 1.2), update or cancel it, watch
it live, see each resident's path."""

from __future__ import annotations

import re

from aiohttp import web

from .. import deliveries, keys
from ..alerts import Alerts
from ..deliveries import delivery_view
from ..fallback import turn_of
from ..lifecycle import Lifecycle
from ..problems import Problem, check, invalid
from ..reopen import CannotReopen, reopen_unreached
from ..schemas import ALERT, COUNTS, INTEGER, REOPEN, STRING, STRINGS, record
from ..transitions import STATES, text
from ..validate import validate
from .audience import index_of
from .cap import CAP_BODY, CAP_TYPES, POLICY_HEADER, post_cap
from .http import STATE, json_body, json_response, require
from .routing import Route, returns

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
PAGE_MAX = 1000


async def post_alert(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:write")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise invalid([{"field": "Idempotency-Key", "detail": "1-200 printable ASCII characters"}])
    if request.content_type in CAP_TYPES:
        return await post_cap(request, agency, key)
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported media type", "Send application/json or application/cap+xml.",
                      errors=[{"field": "Content-Type", "detail": f"{request.content_type} is not accepted"}])
    doc = await validate(agency, await json_body(request), index_of(request.app))
    state = request.app[STATE]
    aid, created = await Alerts(state["redis"]).create(agency.id, doc, key, callbacks=agency.has_callback)
    if created:
        state["dispatch"].fan_out(aid, turn_of(doc))
    body = {"id": aid, "status": "accepted", "href": f"/v1/alerts/{aid}"}
    return json_response(body, status=202, headers={"Location": f"/v1/alerts/{aid}"})


async def update_alert(request: web.Request) -> web.Response:
    """New content (area, expiry) for an alert: pending steps send it, the confirmed hear it again."""
    agency = await require(request, "alerts:write")
    aid, _ = await _owned(request, agency)
    doc = await validate(agency, await json_body(request), index_of(request.app))
    state = request.app[STATE]
    result = await Lifecycle(state["redis"], state["dispatch"]).update(aid, doc, agency_id=agency.id)
    return json_response({**result, "href": f"/v1/alerts/{aid}"}, status=202)


async def _own_alert(request: web.Request, scope: str) -> tuple[str, dict]:
    return await _owned(request, await require(request, scope))


async def _owned(request: web.Request, agency) -> tuple[str, dict]:
    aid = request.match_info["aid"]
    meta = await Alerts(request.app[STATE]["redis"]).get(aid)
    # Another agency's alert is as absent as one that never was.
    if meta is None or meta["agency"] != agency.id:
        raise Problem(404, "Not found", "No such alert.")
    return aid, meta


async def list_alerts(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:read")
    redis = request.app[STATE]["redis"]
    ids = [text(a) for a in await redis.zrevrange(keys.agency_alerts(agency.id), 0, 99)]
    store = Alerts(redis)
    return json_response({"alerts": [await store.summary(aid) for aid in ids]})


async def get_alert(request: web.Request) -> web.Response:
    aid, meta = await _own_alert(request, "alerts:read")
    summary = await Alerts(request.app[STATE]["redis"]).summary(aid)
    summary["alert"] = meta["doc"]
    return json_response(summary)


async def list_deliveries(request: web.Request) -> web.Response:
    """Paged by sequence number, so a page is stable while states change."""
    aid, _ = await _own_alert(request, "alerts:read")
    q = request.query
    errors = []
    states = [q["state"]] if "state" in q else list(STATES)
    if "state" in q and q["state"] not in STATES:
        errors.append({"field": "state", "detail": f"one of {list(STATES)}"})
    try:
        limit = int(q.get("limit", 100))
        after = int(q.get("after", -1))
        if not 1 <= limit <= PAGE_MAX:
            raise ValueError
    except ValueError:
        errors.append({"field": "limit/after", "detail": f"limit 1-{PAGE_MAX}, after an integer"})
    if errors:
        raise invalid(errors)
    rows = await deliveries.page(request.app[STATE]["redis"], aid, states, after, limit)
    items = [{"resident": rid, "state": s, "seq": seq} for seq, rid, s in rows]
    body = {"deliveries": items}
    if len(rows) == limit:
        body["next"] = f"/v1/alerts/{aid}/deliveries?after={rows[-1][0]}&limit={limit}" + (
            f"&state={q['state']}" if "state" in q else "")
    return json_response(body)


async def get_delivery(request: web.Request) -> web.Response:
    """The path taken: each step's channel, and each attempt's statuses."""
    aid, _ = await _own_alert(request, "alerts:read")
    rid = request.match_info["rid"]
    redis = request.app[STATE]["redis"]
    d = await redis.hgetall(keys.delivery(aid, rid))
    if not d:
        raise Problem(404, "Not found", "That resident is not in this alert's audience.")
    d = {text(k): text(v) for k, v in d.items()}
    return json_response(delivery_view(rid, d, deliveries.history_lines(d.get("h"))))


async def cancel_alert(request: web.Request) -> web.Response:
    aid, _ = await _own_alert(request, "alerts:write")
    state = request.app[STATE]
    # The claim script reads the status: no step starts after this.
    await Lifecycle(state["redis"], state["dispatch"]).cancel(aid)
    return json_response(await Alerts(state["redis"]).summary(aid), status=202)


async def reopen_alert(request: web.Request) -> web.Response:
    """Retry in place: the unreachable go back in progress on steps their plan did not try."""
    agency = await require(request, "alerts:write")
    aid, _ = await _owned(request, agency)
    body = await json_body(request) if request.can_read_body else {}
    check(REOPEN, body)
    state = request.app[STATE]
    try:
        done = await reopen_unreached(state["redis"], state["engine"], state["dispatch"], aid, body.get("channels"),
                                      again=body.get("again", False), who=f"agency:{agency.id}")
    except CannotReopen as e:
        if e.field:
            raise invalid([{"field": f"/{e.field}", "detail": str(e)}]) from None
        raise Problem(409, "Alert has ended", f"Nothing was reopened: {e}.") from None
    summary = await Alerts(state["redis"]).summary(aid)
    return json_response({**summary, "reopened": done.reopened, "nothing_new": done.nothing_new}, status=202)


ACCEPTED = record({"id": STRING, "status": {"enum": ["accepted", "already accepted"]}, "href": STRING},
                  {"cap": record({"identifier": STRING, "sender": STRING, "msg_type": {"enum": ["Alert"]}}),
                   "warnings": STRINGS})
# An update or cancel, from JSON (`update`) or a CAP Update/Cancel (which adds `cap` and `warnings`).
CHANGED = record({"id": STRING, "status": STRING, "href": STRING},
                 {"version": INTEGER, "repeated": {"type": "boolean"}, "warnings": STRINGS,
                  "cap": record({"identifier": STRING, "sender": STRING, "msg_type": {"enum": ["Update", "Cancel"]}})})
_SUMMARY_FIELDS = {
    "id": STRING, "status": STRING, "event": STRING, "severity": STRING,
    "created_at": {"type": "string", "format": "date-time"}, "version": INTEGER,
    "targeted": INTEGER, "planned": INTEGER, "terminal": INTEGER,
    "deliveries": record({s: INTEGER for s in STATES}),
    "fallbacks": INTEGER,
    # channel -> attempt status -> count, and `confirmed_by`.
    "channels": {"type": "object", "additionalProperties": COUNTS},
}
_SUMMARY_EXTRAS = {"drill": STRING, "update_of": STRING}
ROUND = record(_SUMMARY_FIELDS, _SUMMARY_EXTRAS)
SUMMARY = record(_SUMMARY_FIELDS, {**_SUMMARY_EXTRAS, "update_rounds": {"type": "array", "items": ROUND}})
REOPENED = record(_SUMMARY_FIELDS, {**_SUMMARY_EXTRAS, "update_rounds": {"type": "array", "items": ROUND},
                                    "reopened": INTEGER, "nothing_new": INTEGER})
ALERT_NOW = record(_SUMMARY_FIELDS, {**_SUMMARY_EXTRAS, "update_rounds": {"type": "array", "items": ROUND},
                                     "alert": ALERT})
DELIVERY_PAGE = record({"deliveries": {"type": "array", "items": record(
    {"resident": STRING, "state": {"enum": list(STATES)}, "seq": INTEGER})}}, {"next": STRING})
DELIVERY_PATH = record(
    {"resident": STRING, "state": {"enum": list(STATES)}, "step": INTEGER,
     "plan": {"type": "array", "items": record({"channels": STRINGS, "timeout_s": {"type": "number"}})},
     "attempts": {"type": "array", "items": record(
         {"step": INTEGER, "attempt": INTEGER, "channel": STRING, "provider": STRING, "provider_ref": STRING,
          "statuses": {"type": "array", "items": record({"status": STRING, "at_ms": INTEGER},
                                                        {"error_code": STRING})}})}},
    {"confirmed_by": record({"channel": STRING, "level": STRING}), "reasons": STRINGS})

_DELIVERY_QUERY = {
    "state": ("Only deliveries in this state", {"enum": list(STATES)}),
    "after": ("Sequence number of the last delivery of the previous page", {"type": "integer"}),
    "limit": ("Page size", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}),
}

ROUTES = [
    Route("POST", "/v1/alerts", post_alert, "Post an alert (JSON or CAP 1.2); returns at once", "alerts:write",
          body={"application/json": ALERT, "application/cap+xml": CAP_BODY},
          responses={202: returns("Accepted (a CAP Update or Cancel: applied to the alert it references)",
                                  {"anyOf": [ACCEPTED, CHANGED]}),
                     409: "Idempotency key or CAP identifier reused with another body",
                     415: "Neither JSON nor CAP"},
          headers={"Idempotency-Key": "Same key and body return the same alert",
                   POLICY_HEADER: "CAP only: the delivery policy as JSON (the `policy` of an Alert)"}),
    Route("GET", "/v1/alerts", list_alerts, "This agency's latest alerts", "alerts:read",
          responses={200: returns("The latest 100, newest first", record(
              {"alerts": {"type": "array", "items": SUMMARY}}))}),
    Route("GET", "/v1/alerts/{aid}", get_alert, "Counts by delivery state and by channel, live", "alerts:read",
          responses={200: returns("The counts and the alert as it stands", ALERT_NOW)}),
    Route("GET", "/v1/alerts/{aid}/deliveries", list_deliveries, "Deliveries, paged, optionally by state",
          "alerts:read", query=_DELIVERY_QUERY, responses={200: returns("One page; `next` while more", DELIVERY_PAGE)}),
    Route("GET", "/v1/alerts/{aid}/deliveries/{rid}", get_delivery, "One resident's path and attempts",
          "alerts:read", responses={200: returns("The plan, each attempt and, at the end, why", DELIVERY_PATH)}),
    Route("POST", "/v1/alerts/{aid}/update", update_alert,
          "Replace the content: pending steps send it, the confirmed are told again", "alerts:write",
          body={"application/json": ALERT},
          responses={202: returns("Updating", CHANGED), 409: "The alert is cancelled or expired"}),
    Route("POST", "/v1/alerts/{aid}/reopen", reopen_alert,
          "Reopen the unreachable in place on channels or contact points their plan did not try", "alerts:write",
          body={"application/json": REOPEN},
          responses={202: returns("Reopened: the alert's counts, `reopened` and `nothing_new` (residents with "
                                  "nothing left to try)", REOPENED),
                     409: "The alert is cancelled or expired"}),
    Route("POST", "/v1/alerts/{aid}/cancel", cancel_alert, "Cancel: no further step starts", "alerts:write",
          responses={202: returns("Cancelling: the counts as they stand", SUMMARY)}),
]
