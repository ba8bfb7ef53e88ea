"""CAP 1.2 in and out: OASIS Common Alerting Protocol documents <-> our JSON alert.

Pure logic: no Redis, no HTTP. The API calls `parse_cap` on what an agency
posts as `application/cap+xml` and turns a `CapError` into problem+json;
`emit_cap` writes one of our alerts back out as CAP for feeds and partners.

Reading a CAP document goes through five small steps, each a function below:

1. `_load`: size limit, character encoding, safe XML parsing (defusedxml: no
   DTD, so no external entities and no entity expansion bombs).
2. `_tidy`: forgive what real feeds get wrong without changing the meaning:
   surrounding whitespace, empty optional elements, foreign-namespace
   elements and attributes, elements out of schema order. Each forgiven
   thing that was not mere formatting becomes a warning.
3. `_check_structure`: which CAP elements may appear where, and how often.
4. `_read_header` / `_read_info`: values (enumerations, dateTimes, polygons,
   circles, ...) and the CAP rules between them, in domain terms.
5. `_to_alert`: the rules of the gateway (something to target, something to
   say, status deliverable) and the mapping to `gateway.schemas.ALERT`.

Every step records problems instead of raising, so one `CapError` names all
of them. The shipped XSD then runs over the tidied tree as a last layer, and
reports only what the domain checks did not already name.

Choices worth knowing:
- `status` System and Draft are refused: System messages are alert-network
  housekeeping and a Draft is "not actionable in its current form"; neither
  may reach a resident. Actual, Exercise and Test map to themselves.
- Alert and Update need at least one <info>. Cancel, Ack and Error may have
  none: then `CapAlert.alert` is None and `references` says what they are about.
- Elements out of CAP order are read by name with a warning (the meaning is
  unambiguous and refusing a real warning over it would help nobody);
  misspelt or unknown CAP elements are errors (they may hide meaning).
- Enumerations match case-insensitively, with a warning ("severe").
- Foreign-namespace elements are dropped; a warning says so, except for the
  XML signature CAP itself allows at the end of <alert> (not verified here).
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree as SafeET
from jsonschema import Draft202012Validator

from gateway.geo import ring_problem
from gateway.problems import unsendable_detail
from gateway.schemas import ALERT, GEO_MAX_LAT, TEXT_PATTERN

log = logging.getLogger(__name__)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_CAP_BYTES = 1024 * 1024  # refused before parsing: bounds memory and time
_MAX_DEPTH = 64  # CAP itself nests 5 deep; extensions (signatures) a few more

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
_CHILDREN: dict[str, dict[str, tuple[int, int | None]]] = {
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
# Always indexed in problem paths, even when alone: they are what people count.
_ALWAYS_INDEXED = {"info", "area"}

# --- limits of our JSON alert, read from the schema so they cannot drift -----
_P = ALERT["properties"]
_CONTENT = _P["content"]["additionalProperties"]["properties"]
_LANG_RE = re.compile(_P["content"]["propertyNames"]["pattern"])
_MAX_LANGS = _P["content"]["maxProperties"]
_EVENT_MAX = _P["event"]["maxLength"]
_HEADLINE_MAX = _CONTENT["headline"]["maxLength"]
_BODY_MAX = _CONTENT["body"]["maxLength"]
_INSTRUCTION_MAX = _CONTENT["instruction"]["maxLength"]
_LINK_MAX = _CONTENT["link"]["maxLength"]
_AREAS = _P["audience"]["properties"]["areas"]
_SENDABLE_RE = re.compile(TEXT_PATTERN)
_MAX_AREAS = _AREAS["maxItems"]
_POLYGON_MAX = _AREAS["items"]["oneOf"][0]["properties"]["polygon"]["maxItems"]
_RADIUS_MAX = _AREAS["items"]["oneOf"][1]["properties"]["circle"]["properties"]["radius_km"]["maximum"]
_GEOCODE = _AREAS["items"]["oneOf"][2]["properties"]["geocode"]["properties"]
_ALERT_VALIDATOR = Draft202012Validator(ALERT)

# CAP dateTime: seconds precision and an explicit numeric offset, never "Z".
_CAP_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_DECIMAL_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")
# identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)": references are built from them with commas and spaces.
_BAD_ID_CHARS = re.compile(r"[\s,<&]")
_XML_DECL_RE = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
# Encodings expat decodes itself; anything else we decode in Python first.
_EXPAT_CODECS = {"utf-8", "utf-16", "iso8859-1", "ascii"}
# Characters XML 1.0 cannot carry at all: stripped when emitting.
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class CapError(ValueError):
    """The document is not a CAP 1.2 alert the gateway can take.

    `problems` lists every problem found, each `{"element": path, "detail": text}`
    with an XPath-like path such as `alert/info[2]/area[1]/polygon`; `/` is the
    document as a whole (too big, not XML, unsafe).
    """

    def __init__(self, problems: list[dict]):
        self.problems = problems
        shown = "; ".join(f"{p['element']}: {p['detail']}" for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"invalid CAP: {shown}{more}")


@dataclass
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    # (sender, identifier, sent) of each earlier message this one refers to.
    references: list[tuple[str, str, datetime]]
    # Our JSON alert (validates against gateway.schemas.ALERT), or None for a
    # Cancel/Ack/Error without <info>.
    alert: dict | None
    response_types: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = field(default_factory=list)
    note: str | None = None
    incidents: str | None = None


# =============================================================================
# Reading
# =============================================================================


def parse_cap(data: bytes) -> CapAlert:
    """Parse and check a CAP 1.2 document; raise `CapError` naming every problem."""
    root = _load(data)
    ctx = _Ctx(root)
    _tidy(ctx, root)
    _check_structure(ctx, root, "alert")
    header = _read_header(ctx, root)
    infos = [_read_info(ctx, el) for el in _kids(root, "info")]
    _check_message_rules(ctx, root, header, infos)
    alert, response_types = _to_alert(ctx, header, infos) if infos else (None, [])
    _xsd_layer(ctx, root)
    if ctx.problems:
        raise CapError(ctx.problems)
    return CapAlert(
        identifier=header["identifier"],
        sender=header["sender"],
        sent=header["sent"],
        status=header["status"],
        msg_type=header["msgType"],
        scope=header["scope"],
        references=header["references"],
        alert=alert,
        response_types=response_types,
        warnings=ctx.warnings,
        source=header["source"],
        restriction=header["restriction"],
        addresses=header["addresses"],
        codes=header["codes"],
        note=header["note"],
        incidents=header["incidents"],
    )


def _fail(detail: str, element: str = "/") -> CapError:
    return CapError([{"element": element, "detail": detail}])


# --- 1. load -----------------------------------------------------------------


def _load(data: bytes) -> ET.Element:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # A str has already been decoded by someone guessing the encoding.
        raise TypeError("parse_cap takes the document's bytes")
    data = bytes(data)
    if len(data) > MAX_CAP_BYTES:
        raise _fail(f"the document is {len(data)} bytes; the limit is {MAX_CAP_BYTES} (1 MiB)")
    data = _as_expat_encoding(data)
    try:
        # forbid_dtd: CAP has no use for a DTD, and refusing it outright stops
        # external entities (XXE) and entity expansion (billion laughs) alike.
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as e:
        raise _fail(f"refused for safety: DTDs and entity declarations are not allowed in CAP ({type(e).__name__})")
    except ET.ParseError as e:
        raise _fail(f"not well-formed XML: {e}")
    if root.tag != f"{{{CAP_NS}}}alert":
        ns, local = _split(root.tag)
        if local == "alert" and ns:
            raise _fail(f"namespace {ns!r} is not CAP 1.2 ({CAP_NS})", "alert")
        raise _fail(f"the root element must be <alert> in namespace {CAP_NS}, not {root.tag!r}", "alert")
    return root


def _as_expat_encoding(data: bytes) -> bytes:
    """Honour the XML declaration's encoding, even ones expat cannot decode.

    Expat knows UTF-8, UTF-16, ISO-8859-1 and US-ASCII. Feeds also come in
    EUC-KR, CP949, windows-1252...: those are decoded here and handed to the
    parser as UTF-8 with the declaration rewritten to match.
    """
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data  # a byte order mark outranks the declaration; expat knows these
    m = _XML_DECL_RE.match(data)
    if not m:
        return data
    label = m.group(1).decode("ascii")
    try:
        codec = codecs.lookup(label).name
    except LookupError:
        raise _fail(f"unknown character encoding {label!r} in the XML declaration")
    if codec in _EXPAT_CODECS:
        return data
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        raise _fail(f"bytes {e.start}-{e.end} are not valid {label}, the declared encoding")
    start, end = m.span(1)  # ASCII-compatible codecs keep the declaration's offsets
    return (text[:start] + "UTF-8" + text[end:]).encode("utf-8")


# --- bookkeeping: paths, problems, warnings ----------------------------------


class _Ctx:
    """Problems and warnings of one document, and each element's path in it.

    Paths are taken before tidying, so indexes count what the sender wrote.
    """

    def __init__(self, root: ET.Element):
        self.problems: list[dict] = []
        self.warnings: list[str] = []
        self.paths: dict[ET.Element, str] = {root: "alert"}
        stack = [(root, 1)]
        while stack:  # iterative: a hostile document may nest deeply
            el, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise _fail(f"elements nested more than {_MAX_DEPTH} deep")
            counts = Counter(c.tag for c in el)
            seen: Counter = Counter()
            for child in el:
                seen[child.tag] += 1
                name = _display_name(child.tag)
                many = counts[child.tag] > 1 or name in _ALWAYS_INDEXED
                self.paths[child] = f"{self.paths[el]}/{name}" + (f"[{seen[child.tag]}]" if many else "")
                stack.append((child, depth + 1))

    def path(self, where: ET.Element | str) -> str:
        return where if isinstance(where, str) else self.paths.get(where, "alert")

    def problem(self, where: ET.Element | str, detail: str) -> None:
        self.problems.append({"element": self.path(where), "detail": detail})

    def warn(self, where: ET.Element | str, text: str) -> None:
        self.warnings.append(f"{self.path(where)}: {text}")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _display_name(tag: str) -> str:
    ns, local = _split(tag)
    return local if ns == CAP_NS else tag


def _local(el: ET.Element) -> str:
    return _split(el.tag)[1]


def _kids(el: ET.Element, name: str) -> list[ET.Element]:
    return el.findall(f"{{{CAP_NS}}}{name}")


# --- 2. tidy -----------------------------------------------------------------


def _tidy(ctx: _Ctx, el: ET.Element) -> None:
    # Recursive is safe: _Ctx refused documents nested more than _MAX_DEPTH.
    _drop_attributes(ctx, el)
    for child in list(el):
        if _split(child.tag)[0] != CAP_NS:
            # Markup inside a value (say an XHTML <em> in a description) goes,
            # its words stay; elsewhere a foreign element goes with its content.
            _remove(el, child, keep_text=_local(el) not in _CHILDREN)
            if not (_local(el) == "alert" and child.tag == f"{{{DSIG_NS}}}Signature"):
                ctx.warn(child, "ignored: not a CAP element")
            continue
        _tidy(ctx, child)
    if _local(el) not in _CHILDREN:
        el.text = (el.text or "").strip()  # a value: the indentation around it is not part of it
    spec = _CHILDREN.get(_local(el), {})
    for child in list(el):
        optional = spec.get(_local(child), (1, 1))[0] == 0
        if optional and len(child) == 0 and not child.text:
            _remove(el, child)
            ctx.warn(child, "ignored: empty")
    _put_in_schema_order(ctx, el, spec)


def _remove(parent: ET.Element, child: ET.Element, keep_text: bool = False) -> None:
    """Remove an element but keep the text after it ("A <x>b</x> C" -> "A  C", or "A b C")."""
    text = ("".join(child.itertext()) if keep_text else "") + (child.tail or "")
    if text:
        siblings = list(parent)
        i = siblings.index(child)
        if i:
            siblings[i - 1].tail = (siblings[i - 1].tail or "") + text
        else:
            parent.text = (parent.text or "") + text
    parent.remove(child)


def _drop_attributes(ctx: _Ctx, el: ET.Element) -> None:
    # CAP defines no attributes. xsi:schemaLocation is common and harmless;
    # dropping it also keeps the XSD layer from ever following it.
    for name in list(el.attrib):
        if _split(name)[0] != XSI_NS:
            ctx.warn(el, f"ignored attribute {name!r}")
    el.attrib.clear()


def _put_in_schema_order(ctx: _Ctx, el: ET.Element, spec: dict) -> None:
    order = list(spec)
    rank = {name: i for i, name in enumerate(order)}
    children = list(el)
    ordered = sorted(children, key=lambda c: rank.get(_local(c), len(order)))
    if ordered != children:
        ctx.warn(el, "child elements are not in CAP order; read by name")
        el[:] = ordered


# --- 3. structure ------------------------------------------------------------


def _check_structure(ctx: _Ctx, el: ET.Element, kind: str) -> None:
    spec = _CHILDREN[kind]
    by_name: dict[str, list[ET.Element]] = {}
    for child in el:
        name = _local(child)
        if name not in spec:
            ctx.problem(child, f"<{name}> is not a CAP 1.2 element inside <{kind}>")
            continue
        by_name.setdefault(name, []).append(child)
        if name in _CHILDREN:
            _check_structure(ctx, child, name)
        elif len(child):
            ctx.problem(child, f"<{name}> must hold text, not elements")
    for name, (least, most) in spec.items():
        found = by_name.get(name, [])
        if len(found) < least:
            ctx.problem(f"{ctx.path(el)}/{name}", f"<{name}> is required in <{kind}>")
        if most is not None and len(found) > most:
            ctx.problem(found[most], f"<{name}> appears {len(found)} times; CAP allows it once")


# --- 4. values -----------------------------------------------------------------


def _first(el: ET.Element, name: str) -> ET.Element | None:
    return el.find(f"{{{CAP_NS}}}{name}")


def _text(el: ET.Element, name: str) -> str | None:
    child = _first(el, name)
    return None if child is None else child.text or ""


def _enum(ctx: _Ctx, parent: ET.Element, name: str, allowed: Sequence[str]) -> str | None:
    """A vocabulary value; a different letter case is forgiven with a warning."""
    child = _first(parent, name)
    return None if child is None else _enum_value(ctx, child, allowed)


def _enum_value(ctx: _Ctx, child: ET.Element, allowed: Sequence[str]) -> str | None:
    value = child.text or ""
    if value in allowed:
        return value
    folded = [a for a in allowed if a.lower() == value.lower()]
    if folded:
        ctx.warn(child, f"read {value!r} as {folded[0]!r}")
        child.text = folded[0]  # so the XSD layer sees the value we used
        return folded[0]
    ctx.problem(child, f"{value!r} is not one of {', '.join(allowed)}")
    return None


def _id_text(ctx: _Ctx, parent: ET.Element, name: str) -> str | None:
    child = _first(parent, name)
    if child is None:
        return None
    value = child.text or ""
    if not value:
        ctx.problem(child, f"<{name}> must not be empty")
        return None
    if _BAD_ID_CHARS.search(value):
        ctx.problem(child, f"<{name}> must not contain spaces, commas, '<' or '&'")
        return None
    return value


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


def _time(ctx: _Ctx, parent: ET.Element, name: str) -> datetime | None:
    child = _first(parent, name)
    if child is None:
        return None
    try:
        return parse_cap_time(child.text or "")
    except ValueError as e:
        ctx.problem(child, str(e))
        return None


def _read_header(ctx: _Ctx, root: ET.Element) -> dict[str, Any]:
    h: dict[str, Any] = {
        "identifier": _id_text(ctx, root, "identifier"),
        "sender": _id_text(ctx, root, "sender"),
        "sent": _time(ctx, root, "sent"),
        "status": _enum(ctx, root, "status", STATUSES),
        "msgType": _enum(ctx, root, "msgType", MSG_TYPES),
        "scope": _enum(ctx, root, "scope", SCOPES),
        "source": _text(root, "source"),
        "restriction": _text(root, "restriction"),
        "addresses": _text(root, "addresses"),
        "codes": [c.text or "" for c in _kids(root, "code")],
        "note": _text(root, "note"),
        "incidents": _text(root, "incidents"),
        "references": [],
    }
    refs = _first(root, "references")
    if refs is not None:
        h["references"] = _read_references(ctx, refs)
    return h


def _read_references(ctx: _Ctx, el: ET.Element) -> list[tuple[str, str, datetime]]:
    out = []
    for n, entry in enumerate((el.text or "").split(), 1):
        parts = entry.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            ctx.problem(el, f"entry {n}, {entry!r}, is not 'sender,identifier,sent'")
            continue
        if _BAD_ID_CHARS.search(parts[0] + parts[1]):
            ctx.problem(el, f"entry {n}, {entry!r}: sender and identifier must not contain '<' or '&'")
            continue
        try:
            out.append((parts[0], parts[1], parse_cap_time(parts[2])))
        except ValueError as e:
            ctx.problem(el, f"entry {n}: {e}")
    return out


@dataclass
class _Info:
    el: ET.Element
    language: str
    event: str | None
    response_types: list[str]
    urgency: str | None
    severity: str | None
    certainty: str | None
    expires: datetime | None
    headline: str | None
    description: str | None
    instruction: str | None
    web: str | None
    areas: list[dict]  # our audience.areas items


def _read_info(ctx: _Ctx, el: ET.Element) -> _Info:
    for child in _kids(el, "category"):
        _enum_value(ctx, child, CATEGORIES)
    response_types = [r for r in (_enum_value(ctx, c, RESPONSE_TYPES) for c in _kids(el, "responseType")) if r]
    for name in ("effective", "onset"):
        _time(ctx, el, name)  # checked, not used: delivery starts when posted
    for resource in _kids(el, "resource"):
        size = _text(resource, "size")
        if size is not None and not re.fullmatch(r"[-+]?\d+", size):
            ctx.problem(_first(resource, "size"), f"{size!r} is not a whole number of bytes")
    language = _text(el, "language")
    if language is None:
        language = "en-US"  # the CAP default
    elif not _LANG_RE.match(language):
        ctx.problem(_first(el, "language"), f"{language!r} is not a BCP 47 language tag the gateway supports "
                                            "(like ko-KR or en)")
    event = _text(el, "event")
    if event == "":
        ctx.problem(_first(el, "event"), "<event> must not be empty")
    return _Info(
        el=el,
        language=language,
        event=event or None,
        response_types=response_types,
        urgency=_enum(ctx, el, "urgency", URGENCIES),
        severity=_enum(ctx, el, "severity", SEVERITIES),
        certainty=_enum(ctx, el, "certainty", CERTAINTIES),
        expires=_time(ctx, el, "expires"),
        headline=_text(el, "headline"),
        description=_text(el, "description"),
        instruction=_text(el, "instruction"),
        web=_text(el, "web"),
        areas=[a for area in _kids(el, "area") for a in _read_area(ctx, area)],
    )


def _read_area(ctx: _Ctx, el: ET.Element) -> list[dict]:
    shapes: list[dict] = []
    for child in _kids(el, "polygon"):
        points = _polygon(ctx, child)
        if points:
            shapes.append({"polygon": points})
    for child in _kids(el, "circle"):
        circle = _circle(ctx, child)
        if circle:
            shapes.append({"circle": circle})
    for child in _kids(el, "geocode"):
        name, value = _text(child, "valueName"), _text(child, "value")
        if name is None or value is None:
            continue  # reported by the structure check
        ok = True
        for label, text, bounds in (("valueName", name, _GEOCODE["name"]), ("value", value, _GEOCODE["value"])):
            if not bounds["minLength"] <= len(text) <= bounds["maxLength"]:
                ctx.problem(child, f"geocode {label} must be {bounds['minLength']} to {bounds['maxLength']} characters")
                ok = False
            elif not _SENDABLE_RE.match(text):
                ctx.problem(child, f"geocode {label} " + unsendable_detail(text))
                ok = False
        if ok:
            shapes.append({"geocode": {"name": name, "value": value}})
    _decimal(ctx, el, "altitude")  # checked, not used: residents are targeted on the ground
    if _decimal(ctx, el, "ceiling") is not None and _first(el, "altitude") is None:
        ctx.problem(_first(el, "ceiling"), "<ceiling> may only be used together with <altitude>")
    if not _shape_elements(el):
        ctx.warn(el, "has only a description (no polygon, circle or geocode): nothing to target")
    return shapes


def _decimal(ctx: _Ctx, parent: ET.Element, name: str) -> float | None:
    child = _first(parent, name)
    if child is None:
        return None
    if not _DECIMAL_RE.match(child.text or ""):
        ctx.problem(child, f"{child.text!r} is not a decimal number")
        return None
    return float(child.text)


def _coordinate(text: str, what: str, limit: float) -> float:
    if not _DECIMAL_RE.match(text):
        raise ValueError(f"{what} {text!r} is not a decimal number")
    value = float(text)
    if not -limit <= value <= limit:
        raise ValueError(f"{what} {text} is outside -{limit:.10g}..{limit:.10g}")
    return value


def _point(pair: str) -> list[float]:
    lat, sep, lon = pair.partition(",")
    if not sep or "," in lon:
        raise ValueError(f"{pair!r} is not a 'lat,lon' pair")
    return [_coordinate(lat, "latitude", GEO_MAX_LAT), _coordinate(lon, "longitude", 180)]


def _pairs(text: str) -> list[str]:
    # "37.5, 126.9" is a common slip; a comma still separates lat from lon.
    return re.sub(r"\s*,\s*", ",", text).split()


def _polygon(ctx: _Ctx, el: ET.Element) -> list[list[float]] | None:
    pairs = _pairs(el.text or "")
    points, errors = [], []
    for pair in pairs:
        try:
            points.append(_point(pair))
        except ValueError as e:
            errors.append(str(e))
    if errors:
        ctx.problem(el, "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
        return None
    if len(points) < 4:
        ctx.problem(el, f"a polygon needs at least 4 'lat,lon' pairs (first and last the same); it has {len(points)}")
        return None
    if points[0] != points[-1]:
        ctx.problem(el, "the polygon is not closed: its first and last points must be the same")
        return None
    if len(points) > _POLYGON_MAX:
        ctx.problem(el, f"the polygon has {len(points)} points; the gateway takes at most {_POLYGON_MAX}")
        return None
    return points


def _circle(ctx: _Ctx, el: ET.Element) -> dict | None:
    parts = _pairs(el.text or "")
    if len(parts) != 2:
        ctx.problem(el, f"{el.text!r} is not a circle 'lat,lon radius_km'")
        return None
    try:
        lat, lon = _point(parts[0])
        radius = _coordinate(parts[1], "radius", float("inf"))
        if not 0 <= radius <= _RADIUS_MAX:
            raise ValueError(f"radius {parts[1]} km is outside 0..{_RADIUS_MAX}")
    except ValueError as e:
        ctx.problem(el, str(e))
        return None
    return {"lat": lat, "lon": lon, "radius_km": radius}


# --- rules between elements --------------------------------------------------


def _check_message_rules(ctx: _Ctx, root: ET.Element, h: dict, infos: list[_Info]) -> None:
    if h["msgType"] in ("Update", "Cancel", "Ack", "Error") and _first(root, "references") is None:
        ctx.problem("alert/references", f"a msgType {h['msgType']} must name the message(s) it refers to "
                                        "in <references> ('sender,identifier,sent' ...)")
    if h["scope"] == "Restricted" and h["restriction"] is None:
        ctx.problem("alert/restriction", "scope Restricted needs a <restriction> saying who may see it")
    if h["scope"] == "Private" and h["addresses"] is None:
        ctx.problem("alert/addresses", "scope Private needs <addresses> naming the recipients")
    if h["status"] in ("System", "Draft"):
        ctx.problem(_first(root, "status"), f"status {h['status']} is not deliverable to residents; "
                                            f"the gateway takes {', '.join(DELIVERABLE_STATUSES)}")
    if not infos and h["msgType"] in ("Alert", "Update"):
        ctx.problem("alert/info", f"a msgType {h['msgType']} needs at least one <info>: "
                                  "the gateway would have nothing to say")
    for info in infos:
        # Bad shapes are reported where they are; this is for infos with none at all.
        if not any(_shape_elements(area) for area in _kids(info.el, "area")):
            ctx.problem(info.el, "no <area> with a polygon, circle or geocode: the gateway has nothing to target")


def _shape_elements(area: ET.Element) -> list[ET.Element]:
    return _kids(area, "polygon") + _kids(area, "circle") + _kids(area, "geocode")


# --- 5. to our JSON alert ------------------------------------------------------


def _to_alert(ctx: _Ctx, h: dict, infos: list[_Info]) -> tuple[dict, list[str]]:
    alert: dict[str, Any] = {}
    first = infos[0]
    if first.event:
        alert["event"] = _one_line(ctx, first.el, "event", first.event, _EVENT_MAX)
    if h["status"] in DELIVERABLE_STATUSES:
        alert["status"] = h["status"]
    # The most severe info speaks for the alert (ties: the earliest).
    rated = [i for i in infos if i.severity]
    if rated:
        worst = min(rated, key=lambda i: SEVERITIES.index(i.severity))
        alert["severity"] = worst.severity
        if worst.urgency:
            alert["urgency"] = worst.urgency
        if worst.certainty:
            alert["certainty"] = worst.certainty
    alert["content"] = _content(ctx, infos)
    alert["audience"] = {"areas": _areas(ctx, infos)}
    expiries = [i.expires for i in infos if i.expires]
    if expiries:
        alert["expires"] = min(expiries).isoformat()
    response_types = list(dict.fromkeys(r for i in infos for r in i.response_types))
    return alert, response_types


def _content(ctx: _Ctx, infos: list[_Info]) -> dict[str, dict]:
    content: dict[str, dict] = {}
    owner: dict[str, _Info] = {}  # lower-cased tag -> info that gave it: tags are case-insensitive
    for info in infos:
        key = info.language.lower()
        if key in owner:
            ctx.warn(info.el, f"language {info.language} was already given by "
                              f"{ctx.path(owner[key].el)}; its text is ignored")
            continue
        owner[key] = info
        if len(content) == _MAX_LANGS:
            ctx.problem(info.el, f"more than {_MAX_LANGS} languages; the gateway carries at most {_MAX_LANGS}")
            continue
        content[info.language] = _one_content(ctx, info)
    return content


def _one_content(ctx: _Ctx, info: _Info) -> dict[str, str]:
    headline = info.headline
    if not headline:
        headline = info.event or "Alert"
        ctx.warn(info.el, "no <headline>; the event name stands in")
    headline = _one_line(ctx, info.el, "headline", headline, _HEADLINE_MAX)
    body = info.description
    if not body:
        body = headline
        ctx.warn(info.el, "no <description>; the headline stands in as the message body")
    if info.description:
        _sendable(ctx, _first(info.el, "description"), body)
    out = {"headline": headline, "body": body}
    # Body and instruction are never cut: a truncated instruction can be worse
    # than none. Too long is the sender's to fix.
    if len(body) > _BODY_MAX:
        ctx.problem(_first(info.el, "description"), f"<description> has {len(body)} characters; "
                                                    f"the gateway carries at most {_BODY_MAX}")
    if info.instruction:
        out["instruction"] = info.instruction
        _sendable(ctx, _first(info.el, "instruction"), info.instruction)
        if len(info.instruction) > _INSTRUCTION_MAX:
            ctx.problem(_first(info.el, "instruction"), f"<instruction> has {len(info.instruction)} characters; "
                                                        f"the gateway carries at most {_INSTRUCTION_MAX}")
    if info.web:
        link = _link(info.web)
        if link:
            out["link"] = link
        else:
            ctx.warn(_first(info.el, "web"), f"ignored: not an absolute http(s) URL of at most {_LINK_MAX} characters")
    return out


def _sendable(ctx: _Ctx, el: ET.Element, text: str) -> None:
    """The API's rule for text that reaches residents (schemas.TEXT_PATTERN):
    XML already keeps out most control characters, not C1 nor DEL."""
    if not _SENDABLE_RE.match(text):
        ctx.problem(el, unsendable_detail(text))


def _one_line(ctx: _Ctx, el: ET.Element, name: str, text: str, limit: int) -> str:
    """Headlines and event names are one line; CAP asks senders to keep headlines short."""
    named = _first(el, name)
    _sendable(ctx, el if named is None else named, text)
    text = " ".join(text.split())
    if len(text) > limit:
        ctx.warn(el, f"<{name}> shortened to {limit} characters")
        text = text[: limit - 1].rstrip() + "…"
    return text


def _link(web: str) -> str | None:
    try:
        parts = urlsplit(web)
    except ValueError:
        return None
    if parts.scheme.lower() in ("http", "https") and parts.netloc and len(web) <= _LINK_MAX and " " not in web:
        return web
    return None


def _areas(ctx: _Ctx, infos: list[_Info]) -> list[dict]:
    # Each language's info usually repeats the same areas: keep one of each.
    unique = {json.dumps(a, sort_keys=True): a for i in infos for a in i.areas}
    areas = list(unique.values())
    if len(areas) > _MAX_AREAS:
        ctx.problem("alert", f"{len(areas)} distinct polygons, circles and geocodes; "
                             f"the gateway takes at most {_MAX_AREAS}")
    return areas


# --- the XSD as a last layer -------------------------------------------------


def _xsd_path() -> Path | None:
    """The CAP 1.2 XSD: $GATEWAY_CAP_XSD, or the copy shipped next to this module."""
    here = Path(__file__).resolve().parent
    for candidate in (os.environ.get("GATEWAY_CAP_XSD"), here / "CAP-v1.2.xsd"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@functools.lru_cache(maxsize=1)
def cap_schema():
    """The XSD compiled with xmlschema (cached), or None when either is missing."""
    path = _xsd_path()
    try:
        import xmlschema
    except ImportError:
        log.warning("xmlschema is not installed: CAP is checked without the XSD layer")
        return None
    if path is None:
        log.warning("CAP-v1.2.xsd not found: CAP is checked without the XSD layer")
        return None
    return xmlschema.XMLSchema(str(path))


def _xsd_layer(ctx: _Ctx, root: ET.Element) -> None:
    """Whatever the XSD finds that the domain checks above did not already name."""
    schema = cap_schema()
    if schema is None:
        return
    named = [p["element"] for p in ctx.problems]
    for error in schema.iter_errors(root):
        where = ctx.paths.get(error.elem, "alert") if error.elem is not None else "alert"
        if any(n == where or n.startswith(where + "/") or where.startswith(n + "/") for n in named):
            continue
        reason = (error.reason or str(error)).replace(f"{{{CAP_NS}}}", "").replace("cap:", "")
        ctx.problem(where, f"not valid CAP 1.2: {reason}")
        named.append(where)


# =============================================================================
# Writing
# =============================================================================


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

    root = ET.Element(_q("alert"))
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", format_cap_time(sent))
    _sub(root, "status", status or alert.get("status", "Actual"))
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    if refs:
        _sub(root, "references", " ".join(refs))
    expires = format_cap_time(_aware(alert["expires"], "expires")) if alert.get("expires") else None
    for language, content in alert["content"].items():
        _emit_info(root, alert, language, content, expires, categories, response_types)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def format_cap_time(when: datetime) -> str:
    """An aware datetime as a CAP dateTime: seconds, numeric offset, UTC as -00:00."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("CAP times need a time zone; got a naive datetime")
    if when.utcoffset() % timedelta(minutes=1):
        when = when.astimezone(timezone.utc)  # CAP offsets have no seconds
    text = when.replace(microsecond=0).isoformat()
    # CAP 1.2: "The timezone for UTC MUST be represented as -00:00".
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def _check_emit_args(alert, identifier, sender, sent, msg_type, status, categories, response_types) -> None:
    errors = sorted(_ALERT_VALIDATOR.iter_errors(alert), key=lambda e: list(map(str, e.path)))
    problems = [f"/{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors]
    if not errors:
        problems += [f"{p['field']}: {p['detail']}" for p in area_problems(alert)]
    for label, value in (("identifier", identifier), ("sender", sender)):
        if not value or _BAD_ID_CHARS.search(value):
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
        if not part or _BAD_ID_CHARS.search(part):
            raise ValueError(f"reference part {part!r} must be non-empty, without spaces, commas, '<' or '&'")
    return f"{ref_sender},{ref_id},{when}"


def _emit_info(root, alert, language, content, expires, categories, response_types) -> None:
    info = _sub(root, "info")
    _sub(info, "language", language)
    for category in categories:
        _sub(info, "category", category)
    _sub(info, "event", alert["event"])
    for response in response_types:
        _sub(info, "responseType", response)
    _sub(info, "urgency", alert.get("urgency", "Unknown"))
    _sub(info, "severity", alert["severity"])
    _sub(info, "certainty", alert.get("certainty", "Unknown"))
    if expires:
        _sub(info, "expires", expires)
    _sub(info, "headline", content["headline"])
    _sub(info, "description", content["body"])
    if content.get("instruction"):
        _sub(info, "instruction", content["instruction"])
    if content.get("link"):
        _sub(info, "web", content["link"])
    audience = alert["audience"]
    for shape in audience.get("areas", ()):
        _emit_area(info, shape)
    for district in audience.get("districts", ()):
        area = _sub(info, "area")
        _sub(area, "areaDesc", f"District {district}")
        _pair(area, "geocode", "district", district)
    if audience.get("everyone"):
        _sub(_sub(info, "area"), "areaDesc", "Everyone in the service area")


def _emit_area(info: ET.Element, shape: dict) -> None:
    # One <area> per shape, so that each gets its own areaDesc.
    area = _sub(info, "area")
    if "polygon" in shape:
        points = shape["polygon"]
        _sub(area, "areaDesc", f"Polygon of {len(points) - 1} corners")
        _sub(area, "polygon", " ".join(f"{_dec(lat)},{_dec(lon)}" for lat, lon in points))
    elif "circle" in shape:
        c = shape["circle"]
        _sub(area, "areaDesc", f"Within {_dec(c['radius_km'])} km of {_dec(c['lat'])},{_dec(c['lon'])}")
        _sub(area, "circle", f"{_dec(c['lat'])},{_dec(c['lon'])} {_dec(c['radius_km'])}")
    else:
        g = shape["geocode"]
        _sub(area, "areaDesc", f"{g['name']} {g['value']}")
        _pair(area, "geocode", g["name"], g["value"])


def _dec(x: float) -> str:
    """A number as a CAP decimal: no exponent, no trailing '.0', full precision."""
    text = repr(float(x))
    if "e" in text or "E" in text:
        text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, _q(name))
    if text is not None:
        # XML 1.0 cannot carry control characters; \r would come back as \n.
        el.text = _NOT_XML_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return el


def _pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    el = _sub(parent, name)
    _sub(el, "valueName", value_name)
    _sub(el, "value", value)


# =============================================================================
# For JSON alerts
# =============================================================================


def area_problems(alert: dict) -> list[dict]:
    """What JSON Schema cannot say about audience.areas: polygons must be closed
    and enclose an area.

    For the API to run after schema validation; `{"field": json-pointer,
    "detail": ...}` like gateway.problems.
    """
    out = []
    for n, shape in enumerate(alert.get("audience", {}).get("areas", ())):
        points = shape.get("polygon") if isinstance(shape, dict) else None
        if points and (problem := ring_problem(points)):
            out.append({"field": f"/audience/areas/{n}/polygon", "detail": problem})
    return out
