"""Writing CAP 1.2: one of our JSON alerts as an OASIS CAP document, for
feeds and partners (`GET /v1/alerts/{id}.cap`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime

from jsonschema import Draft202012Validator

from gateway.geo import audience_problems
from gateway.schemas import ALERT

from .areas import emit_area
from .vocabulary import (
    BAD_ID_CHARS,
    CAP_NS,
    CATEGORIES,
    MSG_TYPES,
    RESPONSE_TYPES,
    STATUSES,
    add,
    add_pair,
    format_cap_time,
    parse_cap_time,
    qname,
)

_ALERT_VALIDATOR = Draft202012Validator(ALERT)


def emit_cap(
    alert: dict,
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    msg_type: str = "Alert",
    references: Iterable[tuple[str, str, datetime | str]] = (),
    status: str | None = None,
    categories: Sequence[str] = ("Other",),
    response_types: Sequence[str] = (),
) -> bytes:
    """Our JSON alert as a CAP 1.2 document (UTF-8, with XML declaration).

    One <info> per content language, each carrying the same event, ratings,
    expiry and areas. Our alert has no CAP category, so `categories` says
    which (default Other); `response_types` likewise (CapAlert keeps them).
    Audience: areas become <area>s; districts become geocodes with valueName
    "district"; `everyone` becomes an area described as such; resident ids are
    never written out. Policy, response options and `short` have no CAP form.
    Raises ValueError for an alert or arguments that would make bad CAP.
    """
    _check_emit_args(alert, identifier, sender, sent, msg_type, status, categories, response_types)
    refs = [_reference(r) for r in references]
    if msg_type in ("Update", "Cancel", "Ack", "Error") and not refs:
        raise ValueError(f"a msgType {msg_type} needs references")

    root = ET.Element(qname("alert"))
    add(root, "identifier", identifier)
    add(root, "sender", sender)
    add(root, "sent", format_cap_time(sent))
    add(root, "status", status or alert.get("status", "Actual"))
    add(root, "msgType", msg_type)
    add(root, "scope", "Public")
    if refs:
        add(root, "references", " ".join(refs))
    expires = format_cap_time(_aware(alert["expires"], "expires")) if alert.get("expires") else None
    for language, content in alert["content"].items():
        _emit_info(root, alert, language, content, expires, categories, response_types)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def _check_emit_args(alert, identifier, sender, sent, msg_type, status, categories, response_types) -> None:
    errors = sorted(_ALERT_VALIDATOR.iter_errors(alert), key=lambda e: list(map(str, e.path)))
    problems = [f"/{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors]
    if not errors:
        problems += [f"{p['field']}: {p['detail']}" for p in audience_problems(alert["audience"])]
    for label, value in (("identifier", identifier), ("sender", sender)):
        if not value or BAD_ID_CHARS.search(value):
            problems.append(f"{label} must be non-empty, without spaces, commas, '<' or '&'")
    if not isinstance(sent, datetime) or sent.utcoffset() is None:
        problems.append("sent must be an aware datetime")
    for label, value, allowed in (("msg_type", msg_type, MSG_TYPES), ("status", status or "Actual", STATUSES)):
        if value not in allowed:
            problems.append(f"{label} {value!r} is not one of {', '.join(allowed)}")
    if not categories or any(c not in CATEGORIES for c in categories):
        problems.append(f"categories must be one or more of {', '.join(CATEGORIES)}")
    if any(r not in RESPONSE_TYPES for r in response_types):
        problems.append(f"response_types must be among {', '.join(RESPONSE_TYPES)}")
    if problems:
        raise ValueError("cannot emit CAP: " + "; ".join(problems))


def _aware(text: str, label: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.utcoffset() is None:
        raise ValueError(f"{label} {text!r} has no time zone")
    return when


def _reference(ref: tuple[str, str, datetime | str]) -> str:
    ref_sender, ref_id, ref_sent = ref
    when = ref_sent if isinstance(ref_sent, str) else format_cap_time(ref_sent)
    parse_cap_time(when)  # raises ValueError if it is not CAP
    for part in (ref_sender, ref_id):
        if not part or BAD_ID_CHARS.search(part):
            raise ValueError(f"reference part {part!r} must be non-empty, without spaces, commas, '<' or '&'")
    return f"{ref_sender},{ref_id},{when}"


def _emit_info(root, alert, language, content, expires, categories, response_types) -> None:
    info = add(root, "info")
    add(info, "language", language)
    for category in categories:
        add(info, "category", category)
    add(info, "event", alert["event"])
    for response in response_types:
        add(info, "responseType", response)
    add(info, "urgency", alert.get("urgency", "Unknown"))
    add(info, "severity", alert["severity"])
    add(info, "certainty", alert.get("certainty", "Unknown"))
    if expires:
        add(info, "expires", expires)
    add(info, "headline", content["headline"])
    add(info, "description", content["body"])
    if content.get("instruction"):
        add(info, "instruction", content["instruction"])
    if content.get("link"):
        add(info, "web", content["link"])
    audience = alert["audience"]
    for shape in audience.get("areas", ()):
        emit_area(info, shape)
    for district in audience.get("districts", ()):
        area = add(info, "area")
        add(area, "areaDesc", f"District {district}")
        add_pair(area, "geocode", "district", district)
    if audience.get("everyone"):
        add(add(info, "area"), "areaDesc", "Everyone in the service area")
