"""`POST /v1/alerts/preview`: what one resident would get, step by step,
before anything is sent.

The body is an alert (as for `POST /v1/alerts`, audience optional) and a
resident, inline or by id.  The answer follows that resident's plan: for
each step and leg, what the channel would hand its provider (the SMS text
with its encoding, segments and whether the link fits; the call's TwiML; the
push notification; the letter's layout and page count), from the channel's
own `preview`.
Nothing is stored, sent or counted.
"""

from __future__ import annotations

from aiohttp import web

from channels.base import Recipient

from ..engine import AlertView
from ..fallback import (
    Contact,
    Policy,
    Profile,
    build_plan,
    initial_state,
    pick_language,
)
from ..problems import field_errors, invalid
from ..registry import normalise
from ..schemas import ALERT, CONFIRMATIONS, INTEGER, RESIDENT, STRING, record
from ..transitions import now_ms
from ..validate import alert_problems
from .http import STATE, json_body, json_response, require
from .routing import Route, returns

# Placeholders as long as a real alert id and page token, so the SMS link
# costs what it will cost.
PREVIEW_ALERT_ID = "al_" + "0" * 16
PREVIEW_TOKEN = "x" * 12
PREVIEW_RESIDENT_ID = "preview"

_ALERT = {k: v for k, v in ALERT.items() if k != "$id"} | {
    "required": [r for r in ALERT["required"] if r != "audience"]}
_RESIDENT = {k: v for k, v in RESIDENT.items() if k != "$id"} | {
    "required": [r for r in RESIDENT["required"] if r != "id"]}

PREVIEW = {
    "$id": "AlertPreview",
    "type": "object",
    "additionalProperties": False,
    "required": ["alert"],
    "description": "An alert and one resident: give `resident` (a profile, as for PUT /v1/residents) "
                   "or `resident_id` (one in the registry), not both.",
    "properties": {
        "alert": _ALERT,
        "resident": _RESIDENT,
        "resident_id": RESIDENT["properties"]["id"],
    },
}


async def preview_alert(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:write")
    body = await json_body(request)
    errors = field_errors(PREVIEW, body)
    if not errors and ("resident" in body) == ("resident_id" in body):
        errors.append({"field": "/resident", "detail": "give either resident or resident_id"})
    if errors:
        raise invalid(errors)
    doc = _checked_alert(body["alert"])
    state = request.app[STATE]
    resident = await _resident(state, agency, body)
    return json_response(await preview(state["engine"], doc, resident))


def _checked_alert(alert: dict) -> dict:
    """The alert's own rules (response codes, expiry, areas), errors under /alert."""
    doc = {"audience": {"everyone": True}, **alert}
    errors = alert_problems(doc)
    if errors:
        raise invalid([{**e, "field": "/alert" + e["field"]} for e in errors])
    return doc


async def _resident(state: dict, agency, body: dict) -> dict:
    if "resident" in body:
        resident, errors = normalise({"id": PREVIEW_RESIDENT_ID, **body["resident"]}, ("resident",))
        if errors:
            raise invalid(errors)
        return resident
    rid = body["resident_id"]
    resident = await state["engine"].registry.get(rid)
    # One outside the agency's area is no more its to see than in /v1/residents.
    if resident is None or not agency.holds(resident["district"], resident.get("location")):
        raise invalid([{"field": "/resident_id", "detail": "no such resident in your agency's area"}])
    return resident


async def preview(engine, doc: dict, resident: dict) -> dict:
    """Each step of the resident's plan, with what each leg would send."""
    contacts = resident.get("contacts", [])
    needs = frozenset(resident.get("needs", ()))
    profile = Profile(
        languages=tuple(resident["languages"]),
        contacts=tuple(Contact(c["type"], c.get("handset")) for c in contacts),
        needs=needs,
        dead=frozenset(resident.get("dead_contacts", ())),
        non_emergency=resident.get("consent", {}).get("non_emergency", True),
    )
    policy = Policy.from_alert(doc)
    steps = build_plan(profile, policy, engine.specs())
    view = AlertView(doc, policy, list(doc["content"]), now_ms())
    language = pick_language(resident["languages"], view.languages)
    rid = resident["id"]
    out_steps = []
    for k, step in enumerate(steps):
        legs = []
        for leg, (name, index) in enumerate(step["l"]):
            channel = engine.channels[name]
            message = engine.message(PREVIEW_ALERT_ID, view, rid, k, 0,
                                     pick_language(resident["languages"], view.languages, channel.speaks),
                                     PREVIEW_TOKEN, leg,
                                     tuple(resident["languages"]))
            recipient = Recipient(rid, contacts[index], needs, tuple(resident["languages"]),
                                  resident.get("name", ""), resident.get("birth_year"))
            legs.append({"channel": name, "contact": masked(contacts[index]),
                         "preview": await channel.preview(message, recipient)})
        out_steps.append({"step": k, "timeout_s": step["t"], "legs": legs})
    return {
        "resident": rid,
        "language": language,
        "confirmation": policy.confirmation,
        "max_attempts_per_step": policy.max_attempts,
        # planned: the steps below would run; opted_out or unreachable: nothing would be sent.
        "initial_state": initial_state(profile, policy, steps),
        "steps": out_steps,
    }


def masked(contact: dict) -> dict:
    """The contact point, recognisable to the agency but not spelled out."""
    kind = contact["type"]
    if kind == "phone":
        number = contact["number"]
        hidden = number[:3] + "*" * (len(number) - 7) + number[-4:]
        return {"type": kind, "handset": contact["handset"], "number": hidden}
    if kind == "postal":
        return {"type": kind, "postcode": contact["postcode"]}
    if kind == "fcm":
        return {"type": kind, "token": "…" + contact["token"][-6:]}
    if kind == "webpush":
        return {"type": kind, "endpoint": contact["endpoint"].split("/")[2] if "//" in contact["endpoint"] else ""}
    return {"type": kind}


WOULD_SEND = record({
    "resident": STRING, "language": STRING, "confirmation": {"enum": CONFIRMATIONS},
    "max_attempts_per_step": INTEGER, "initial_state": STRING,
    "steps": {"type": "array", "items": record({
        "step": INTEGER, "timeout_s": {"type": "number"},
        # `preview` is the channel's own: the SMS text and segments, the TwiML, the push payload, the letter.
        "legs": {"type": "array", "items": record({"channel": STRING, "contact": {"type": "object"},
                                                  "preview": {"type": ["object", "null"]}})}})},
})

ROUTES = [
    Route("POST", "/v1/alerts/preview", preview_alert,
          "What one resident would receive on each step of their plan; nothing is sent", "alerts:write",
          body={"application/json": PREVIEW}, responses={200: returns("Each step and leg with what it would send", WOULD_SEND)}),
]
