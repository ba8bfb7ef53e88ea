"""CAP 1.2 over the agency API.

`POST /v1/alerts` with `application/cap+xml` comes here (gateway/api/alerts.py
hands it over): an Alert is posted like a JSON alert, an Update or Cancel
finds the alert its `references` name (gateway/lifecycle.py). A sender's
identifier is its idempotency key, for good: the same message again returns
the same alert; another message under the same identifier is a 409.

CAP carries no delivery policy; an agency that wants one (channels,
timeouts, confirmation) sends it as JSON in the `Gateway-Policy` header.

`GET /v1/alerts/{id}.cap` gives the alert back as CAP 1.2: the agency's own
message (identifier, sender, sent) when it came as CAP, else one the
gateway names after the alert; Update after an update, Cancel once cancelled.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from ..agencies import Agency
from ..alerts import Alerts, body_digest
from ..cap.emit import emit_cap
from ..cap.parse import MAX_CAP_BYTES, CapAlert, CapError, parse_cap
from ..cap.vocabulary import format_cap_time
from ..fallback import turn_of
from ..lifecycle import Lifecycle
from ..problems import Problem, field_errors, invalid
from ..schemas import ALERT
from ..validate import validate
from .audience import index_of
from .http import STATE, json_response, require
from .routing import Route, returns

CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
POLICY_HEADER = "Gateway-Policy"
CAP_BODY = {"type": "string", "contentMediaType": "application/cap+xml",
            "description": "An OASIS CAP 1.2 <alert>: msgType Alert, Update or Cancel; status Actual, "
                           "Exercise or Test (drills reach only residents who agreed to drills)."}


async def _read(request: web.Request) -> bytes:
    limit = min(request.app[STATE]["settings"].max_body_bytes, MAX_CAP_BYTES)
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Body too large", f"The limit is {limit} bytes.")
    raw = await request.read()
    if len(raw) > limit:
        raise Problem(413, "Body too large", f"The limit is {limit} bytes.")
    return raw


def _policy(request: web.Request) -> dict | None:
    raw = request.headers.get(POLICY_HEADER)
    if raw is None:
        return None
    try:
        policy = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid([{"field": POLICY_HEADER, "detail": "not JSON"}]) from None
    errors = field_errors(ALERT["properties"]["policy"], policy)
    if errors:
        raise invalid([{"field": POLICY_HEADER + e["field"].rstrip("/"), "detail": e["detail"]} for e in errors])
    return policy


def _cap_field(pointer: str) -> str:
    """Where in the CAP document a problem with the alert made from it lies."""
    parts = pointer.strip("/").split("/")
    if parts[0] == "expires":
        return "alert/info/expires"
    if parts[0] == "audience" and len(parts) > 2 and parts[1] == "areas":
        shape = parts[3] if len(parts) > 3 else "area"
        return f"alert/info/area ({shape} {int(parts[2]) + 1} of the alert)"
    if parts[0] == "audience":
        return "alert/info/area"
    if parts[0] == "content" and len(parts) > 1:
        return f"alert/info (language {parts[1]})/" + ("/".join(parts[2:]) or "")
    return "alert/info/" + parts[0]


def _as_cap_errors(problem: Problem) -> Problem:
    for e in problem.errors:
        e["field"] = _cap_field(e["field"])
    return problem


async def post_cap(request: web.Request, agency: Agency, idempotency_key: str | None) -> web.Response:
    state = request.app[STATE]
    redis = state["redis"]
    raw = await _read(request)
    try:
        message = parse_cap(raw)
    except CapError as e:
        raise invalid([{"field": p["element"], "detail": p["detail"]} for p in e.problems],
                      "Not a CAP 1.2 alert the gateway can take: " + "; ".join(
                          sorted({p["element"] for p in e.problems}))) from None
    if message.msg_type not in ("Alert", "Update", "Cancel"):
        raise invalid([{"field": "alert/msgType", "detail": f"{message.msg_type} is not taken here: "
                                                             "post Alert, Update or Cancel"}])
    cap = {
        "identifier": message.identifier, "sender": message.sender, "sent": format_cap_time(message.sent),
        "msg_type": message.msg_type, "status": message.status,
        "references": [[s, i, format_cap_time(t)] for s, i, t in message.references],
        "response_types": message.response_types,
    }
    policy = _policy(request)
    doc = message.alert
    if doc is not None and policy is not None:
        doc["policy"] = policy
    digest = body_digest({"cap": cap, "alert": doc})
    lifecycle = Lifecycle(redis, state["dispatch"])

    if message.msg_type == "Cancel":
        aid = await _referenced_alert(lifecycle, agency, message.references)
        result = await lifecycle.cancel(aid, agency_id=agency.id, cap=cap, cap_digest=digest)
        return _changed(aid, result, message)
    aid = await _referenced_alert(lifecycle, agency, message.references) if message.msg_type == "Update" else None
    try:
        await validate(agency, doc, index_of(request.app))
    except Problem as p:
        raise _as_cap_errors(p) from None
    if aid is not None:
        result = await lifecycle.update(aid, doc, agency_id=agency.id, cap=cap, cap_digest=digest)
        return _changed(aid, result, message)
    aid, created = await Alerts(redis).create(agency.id, doc, idempotency_key, cap=cap, cap_digest=digest,
                                              callbacks=agency.has_callback)
    if created:
        state["dispatch"].fan_out(aid, turn_of(doc))
    body = {"id": aid, "status": "accepted" if created else "already accepted", "href": f"/v1/alerts/{aid}",
            "cap": {"identifier": message.identifier, "sender": message.sender, "msg_type": "Alert"},
            "warnings": message.warnings}
    return json_response(body, status=202, headers={"Location": f"/v1/alerts/{aid}"})


def _changed(aid: str, result: dict, message: CapAlert) -> web.Response:
    """The answer to an Update or Cancel: what happened to the alert it refers to."""
    body = {**result, "href": f"/v1/alerts/{aid}", "warnings": message.warnings,
            "cap": {"identifier": message.identifier, "sender": message.sender, "msg_type": message.msg_type}}
    return json_response(body, status=202, headers={"Location": f"/v1/alerts/{aid}"})


async def _referenced_alert(lifecycle: Lifecycle, agency: Agency, references: list) -> str:
    """The one alert an Update or Cancel refers to (through any of its earlier messages)."""
    found = await lifecycle.find(agency.id, references)
    errors = [{"field": "alert/references", "detail": f"entry {n + 1} ({references[n][0]},{references[n][1]}): "
                                                      "no such message from your agency"}
              for n, aid in found if aid is None]
    aids = {aid for _, aid in found if aid}
    if not errors and len(aids) > 1:
        errors.append({"field": "alert/references", "detail": "the entries name different alerts; "
                                                              "send one Update or Cancel per alert"})
    if errors:
        raise invalid(errors)
    return aids.pop()


# Out ---------------------------------------------------------------------------------


def _ms_time(ms: str | int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, timezone.utc)


def cap_message(meta: dict, aid: str, public_url: str) -> bytes:
    """The alert as the CAP message that describes it now."""
    doc = meta["doc"]
    cap = orjson.loads(meta["cap"]) if meta.get("cap") else None
    version = int(meta.get("version", 1))
    host = urlsplit(public_url).netloc or "gateway"
    own_sender = f"{meta['agency']}@{host}"
    created = _ms_time(meta["created_ms"])
    if cap:
        identifier, sender, sent, msg_type = cap["identifier"], cap["sender"], cap["sent"], cap["msg_type"]
        references = [tuple(r) for r in cap["references"]]
        sent = datetime.fromisoformat(sent)
    else:
        identifier = aid if version == 1 else f"{aid}.{version}"
        sender, msg_type = own_sender, "Alert" if version == 1 else "Update"
        sent = created if version == 1 else _ms_time(meta.get("updated_ms", meta["created_ms"]))
        references = [] if version == 1 else [(sender, aid, format_cap_time(created))]
    if meta["status"] == "cancelled":
        cancel = orjson.loads(meta["cap_cancel"]) if meta.get("cap_cancel") else None
        references = [(sender, identifier, format_cap_time(sent))]
        if cancel:
            identifier, sender, sent = cancel["identifier"], cancel["sender"], datetime.fromisoformat(cancel["sent"])
        else:
            identifier, sender = f"{aid}.cancel", own_sender
            sent = _ms_time(meta.get("cancelled_ms", meta["created_ms"]))
        msg_type = "Cancel"
    return emit_cap(doc, identifier=identifier, sender=sender, sent=sent, msg_type=msg_type,
                    references=references, status=doc.get("status", "Actual"),
                    response_types=cap.get("response_types", []) if cap else ())


async def get_alert_cap(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:read")
    aid = request.match_info["aid"]
    meta = await Alerts(request.app[STATE]["redis"]).get(aid)
    if meta is None or meta["agency"] != agency.id:
        raise Problem(404, "Not found", "No such alert.")
    body = cap_message(meta, aid, request.app[STATE]["settings"].public_url)
    return web.Response(body=body, content_type="application/cap+xml", charset="utf-8")


ROUTES = [
    # Before GET /v1/alerts/{aid}, which would take "al_x.cap" as an id.
    Route("GET", "/v1/alerts/{aid}.cap", get_alert_cap, "The alert as a CAP 1.2 message", "alerts:read",
          responses={200: returns("CAP 1.2", {"type": "string"}, "application/cap+xml")}),
]
