"""CAP 1.2 as a language: its namespace, vocabulary, element structure and
dateTime, and the few helpers that find and add elements. Shared by reading
(parse.py), writing (emit.py) and areas (areas.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

# --- CAP 1.2 vocabulary, as in CAP-v1.2.xsd ---------------------------------
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
DELIVERABLE_STATUSES = ("Actual", "Exercise", "Test")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health",
              "Env", "Transport", "Infra", "CBRNE", "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid",
                  "Monitor", "Assess", "AllClear", "None")
# Most severe first: the order decides which info sets the alert's severity.
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

_PAIR = {"valueName": (1, 1), "value": (1, 1)}
# Children of each CAP container, in schema order, with (minOccurs, maxOccurs);
# None means unbounded. Elements not named here as containers hold text.
CHILDREN: dict[str, dict[str, tuple[int, int | None]]] = {
    "alert": {
        "identifier": (1, 1), "sender": (1, 1), "sent": (1, 1), "status": (1, 1),
        "msgType": (1, 1), "source": (0, 1), "scope": (1, 1), "restriction": (0, 1),
        "addresses": (0, 1), "code": (0, None), "note": (0, 1), "references": (0, 1),
        "incidents": (0, 1), "info": (0, None),
    },
    "info": {
        "language": (0, 1), "category": (1, None), "event": (1, 1),
        "responseType": (0, None), "urgency": (1, 1), "severity": (1, 1),
        "certainty": (1, 1), "audience": (0, 1), "eventCode": (0, None),
        "effective": (0, 1), "onset": (0, 1), "expires": (0, 1), "senderName": (0, 1),
        "headline": (0, 1), "description": (0, 1), "instruction": (0, 1), "web": (0, 1),
        "contact": (0, 1), "parameter": (0, None), "resource": (0, None), "area": (0, None),
    },
    "resource": {
        "resourceDesc": (1, 1), "mimeType": (1, 1), "size": (0, 1), "uri": (0, 1),
        "derefUri": (0, 1), "digest": (0, 1),
    },
    "area": {
        "areaDesc": (1, 1), "polygon": (0, None), "circle": (0, None),
        "geocode": (0, None), "altitude": (0, 1), "ceiling": (0, 1),
    },
    "eventCode": _PAIR,
    "parameter": _PAIR,
    "geocode": _PAIR,
}

# identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)": references are built from them with commas and spaces.
BAD_ID_CHARS = re.compile(r"[\s,<&]")
# CAP dateTime: seconds precision and an explicit numeric offset, never "Z".
_CAP_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
# Characters XML 1.0 cannot carry at all: stripped when emitting.
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- dateTime ------------------------------------------------------------------


def parse_cap_time(value: str) -> datetime:
    """A CAP dateTime ("2024-08-01T14:00:00+09:00") as an aware datetime.

    Raises ValueError with a sentence fit for a problem detail.
    """
    if value.endswith(("Z", "z")):
        raise ValueError(f"{value!r} ends in 'Z'; CAP 1.2 needs a numeric offset, '-00:00' for UTC")
    if not _CAP_TIME_RE.match(value):
        raise ValueError(f"{value!r} is not a CAP dateTime like 2024-08-01T14:00:00+09:00 "
                         "(seconds, no fractions, explicit offset)")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date and time") from None
    if abs(when.utcoffset()) > timedelta(hours=14):
        raise ValueError(f"{value!r} has an offset beyond ±14:00")
    return when


def format_cap_time(when: datetime) -> str:
    """An aware datetime as a CAP dateTime: seconds, numeric offset, UTC as -00:00."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("CAP times need a time zone; got a naive datetime")
    if when.utcoffset() % timedelta(minutes=1):
        when = when.astimezone(UTC)  # CAP offsets have no seconds
    text = when.replace(microsecond=0).isoformat()
    # CAP 1.2: "The timezone for UTC MUST be represented as -00:00".
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


# --- finding and adding elements -------------------------------------------------


def child_of(el: ET.Element, name: str) -> ET.Element | None:
    return el.find(f"{{{CAP_NS}}}{name}")


def text_of(el: ET.Element, name: str) -> str | None:
    child = child_of(el, name)
    return None if child is None else child.text or ""


def children_of(el: ET.Element, name: str) -> list[ET.Element]:
    return el.findall(f"{{{CAP_NS}}}{name}")


def qname(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, qname(name))
    if text is not None:
        # XML 1.0 cannot carry control characters; \r would come back as \n.
        el.text = _NOT_XML_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return el


def add_pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    el = add(parent, name)
    add(el, "valueName", value_name)
    add(el, "value", value)
