"""Reading CAP 1.2: an OASIS Common Alerting Protocol document -> our JSON alert.

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
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree as SafeET

from gateway.problems import unsendable_detail
from gateway.schemas import ALERT, TEXT_PATTERN

from .areas import distinct_areas, read_area, shape_elements
from .vocabulary import (
    BAD_ID_CHARS,
    CAP_NS,
    CATEGORIES,
    CERTAINTIES,
    CHILDREN,
    DELIVERABLE_STATUSES,
    DSIG_NS,
    MSG_TYPES,
    RESPONSE_TYPES,
    SCOPES,
    SEVERITIES,
    STATUSES,
    URGENCIES,
    XSI_NS,
    child_of,
    children_of,
    parse_cap_time,
    text_of,
)

log = logging.getLogger(__name__)

MAX_CAP_BYTES = 1024 * 1024  # refused before parsing: bounds memory and time
_MAX_DEPTH = 64  # CAP itself nests 5 deep; extensions (signatures) a few more

# Always indexed in problem paths, even when alone: they are what people count.
_ALWAYS_INDEXED = {"info", "area"}

# Limits of our JSON alert, read from the schema so they cannot drift.
_P = ALERT["properties"]
_CONTENT = _P["content"]["additionalProperties"]["properties"]
_LANG_RE = re.compile(_P["content"]["propertyNames"]["pattern"])
_MAX_LANGS = _P["content"]["maxProperties"]
_EVENT_MAX = _P["event"]["maxLength"]
_HEADLINE_MAX = _CONTENT["headline"]["maxLength"]
_BODY_MAX = _CONTENT["body"]["maxLength"]
_INSTRUCTION_MAX = _CONTENT["instruction"]["maxLength"]
_LINK_MAX = _CONTENT["link"]["maxLength"]
_SENDABLE_RE = re.compile(TEXT_PATTERN)

_XML_DECL_RE = re.compile(rb"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
# Encodings expat decodes itself; anything else we decode in Python first.
_EXPAT_CODECS = {"utf-8", "utf-16", "iso8859-1", "ascii"}


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


def parse_cap(data: bytes) -> CapAlert:
    """Parse and check a CAP 1.2 document; raise `CapError` naming every problem."""
    root = _load(data)
    ctx = Ctx(root)
    _tidy(ctx, root)
    _check_structure(ctx, root, "alert")
    header = _read_header(ctx, root)
    infos = [_read_info(ctx, el) for el in children_of(root, "info")]
    _check_message_rules(ctx, root, header, infos)
    alert, response_types = _to_alert(ctx, header, infos) if infos else (None, [])
    _xsd_layer(ctx, root)
    if ctx.problems:
        raise CapError(ctx.problems)
    return CapAlert(**header, alert=alert, response_types=response_types, warnings=ctx.warnings)


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


class Ctx:
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



# --- 2. tidy -----------------------------------------------------------------


def _tidy(ctx: Ctx, el: ET.Element) -> None:
    # Recursive is safe: Ctx refused documents nested more than _MAX_DEPTH.
    _drop_attributes(ctx, el)
    for child in list(el):
        if _split(child.tag)[0] != CAP_NS:
            # Markup inside a value (say an XHTML <em> in a description) goes,
            # its words stay; elsewhere a foreign element goes with its content.
            _remove(el, child, keep_text=_local(el) not in CHILDREN)
            if not (_local(el) == "alert" and child.tag == f"{{{DSIG_NS}}}Signature"):
                ctx.warn(child, "ignored: not a CAP element")
            continue
        _tidy(ctx, child)
    if _local(el) not in CHILDREN:
        el.text = (el.text or "").strip()  # a value: the indentation around it is not part of it
    spec = CHILDREN.get(_local(el), {})
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


def _drop_attributes(ctx: Ctx, el: ET.Element) -> None:
    # CAP defines no attributes. xsi:schemaLocation is common and harmless;
    # dropping it also keeps the XSD layer from ever following it.
    for name in list(el.attrib):
        if _split(name)[0] != XSI_NS:
            ctx.warn(el, f"ignored attribute {name!r}")
    el.attrib.clear()


def _put_in_schema_order(ctx: Ctx, el: ET.Element, spec: dict) -> None:
    order = list(spec)
    rank = {name: i for i, name in enumerate(order)}
    children = list(el)
    ordered = sorted(children, key=lambda c: rank.get(_local(c), len(order)))
    if ordered != children:
        ctx.warn(el, "child elements are not in CAP order; read by name")
        el[:] = ordered


# --- 3. structure ------------------------------------------------------------


def _check_structure(ctx: Ctx, el: ET.Element, kind: str) -> None:
    spec = CHILDREN[kind]
    by_name: dict[str, list[ET.Element]] = {}
    for child in el:
        name = _local(child)
        if name not in spec:
            ctx.problem(child, f"<{name}> is not a CAP 1.2 element inside <{kind}>")
            continue
        by_name.setdefault(name, []).append(child)
        if name in CHILDREN:
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


def _enum(ctx: Ctx, parent: ET.Element, name: str, allowed: Sequence[str]) -> str | None:
    """A vocabulary value; a different letter case is forgiven with a warning."""
    child = child_of(parent, name)
    return None if child is None else _enum_value(ctx, child, allowed)


def _enum_value(ctx: Ctx, child: ET.Element, allowed: Sequence[str]) -> str | None:
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


def _id_text(ctx: Ctx, parent: ET.Element, name: str) -> str | None:
    child = child_of(parent, name)
    if child is None:
        return None
    value = child.text or ""
    if not value:
        ctx.problem(child, f"<{name}> must not be empty")
        return None
    if BAD_ID_CHARS.search(value):
        ctx.problem(child, f"<{name}> must not contain spaces, commas, '<' or '&'")
        return None
    return value


def _time(ctx: Ctx, parent: ET.Element, name: str) -> datetime | None:
    child = child_of(parent, name)
    if child is None:
        return None
    try:
        return parse_cap_time(child.text or "")
    except ValueError as e:
        ctx.problem(child, str(e))
        return None


def _read_header(ctx: Ctx, root: ET.Element) -> dict[str, Any]:
    """The <alert> element's own fields, named as `CapAlert` names them."""
    h: dict[str, Any] = {
        "identifier": _id_text(ctx, root, "identifier"),
        "sender": _id_text(ctx, root, "sender"),
        "sent": _time(ctx, root, "sent"),
        "status": _enum(ctx, root, "status", STATUSES),
        "msg_type": _enum(ctx, root, "msgType", MSG_TYPES),
        "scope": _enum(ctx, root, "scope", SCOPES),
        "source": text_of(root, "source"),
        "restriction": text_of(root, "restriction"),
        "addresses": text_of(root, "addresses"),
        "codes": [c.text or "" for c in children_of(root, "code")],
        "note": text_of(root, "note"),
        "incidents": text_of(root, "incidents"),
        "references": [],
    }
    refs = child_of(root, "references")
    if refs is not None:
        h["references"] = _read_references(ctx, refs)
    return h


def _read_references(ctx: Ctx, el: ET.Element) -> list[tuple[str, str, datetime]]:
    out = []
    for n, entry in enumerate((el.text or "").split(), 1):
        parts = entry.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            ctx.problem(el, f"entry {n}, {entry!r}, is not 'sender,identifier,sent'")
            continue
        if BAD_ID_CHARS.search(parts[0] + parts[1]):
            ctx.problem(el, f"entry {n}, {entry!r}: sender and identifier must not contain '<' or '&'")
            continue
        try:
            out.append((parts[0], parts[1], parse_cap_time(parts[2])))
        except ValueError as e:
            ctx.problem(el, f"entry {n}: {e}")
    return out


@dataclass
class Info:
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


def _read_info(ctx: Ctx, el: ET.Element) -> Info:
    for child in children_of(el, "category"):
        _enum_value(ctx, child, CATEGORIES)
    response_types = [r for r in (_enum_value(ctx, c, RESPONSE_TYPES) for c in children_of(el, "responseType")) if r]
    for name in ("effective", "onset"):
        _time(ctx, el, name)  # checked, not used: delivery starts when posted
    for resource in children_of(el, "resource"):
        size = text_of(resource, "size")
        if size is not None and not re.fullmatch(r"[-+]?\d+", size):
            ctx.problem(child_of(resource, "size"), f"{size!r} is not a whole number of bytes")
    language = text_of(el, "language")
    if language is None:
        language = "en-US"  # the CAP default
    elif not _LANG_RE.match(language):
        ctx.problem(child_of(el, "language"), f"{language!r} is not a BCP 47 language tag the gateway supports "
                                            "(like ko-KR or en)")
    event = text_of(el, "event")
    if event == "":
        ctx.problem(child_of(el, "event"), "<event> must not be empty")
    return Info(
        el=el,
        language=language,
        event=event or None,
        response_types=response_types,
        urgency=_enum(ctx, el, "urgency", URGENCIES),
        severity=_enum(ctx, el, "severity", SEVERITIES),
        certainty=_enum(ctx, el, "certainty", CERTAINTIES),
        expires=_time(ctx, el, "expires"),
        headline=text_of(el, "headline"),
        description=text_of(el, "description"),
        instruction=text_of(el, "instruction"),
        web=text_of(el, "web"),
        areas=[a for area in children_of(el, "area") for a in read_area(ctx, area)],
    )


# --- rules between elements --------------------------------------------------


def _check_message_rules(ctx: Ctx, root: ET.Element, h: dict, infos: list[Info]) -> None:
    if h["msg_type"] in ("Update", "Cancel", "Ack", "Error") and child_of(root, "references") is None:
        ctx.problem("alert/references", f"a msgType {h['msg_type']} must name the message(s) it refers to "
                                        "in <references> ('sender,identifier,sent' ...)")
    if h["scope"] == "Restricted" and h["restriction"] is None:
        ctx.problem("alert/restriction", "scope Restricted needs a <restriction> saying who may see it")
    if h["scope"] == "Private" and h["addresses"] is None:
        ctx.problem("alert/addresses", "scope Private needs <addresses> naming the recipients")
    if h["status"] in ("System", "Draft"):
        ctx.problem(child_of(root, "status"), f"status {h['status']} is not deliverable to residents; "
                                            f"the gateway takes {', '.join(DELIVERABLE_STATUSES)}")
    if not infos and h["msg_type"] in ("Alert", "Update"):
        ctx.problem("alert/info", f"a msgType {h['msg_type']} needs at least one <info>: "
                                  "the gateway would have nothing to say")
    for info in infos:
        # Bad shapes are reported where they are; this is for infos with none at all.
        if not any(shape_elements(area) for area in children_of(info.el, "area")):
            ctx.problem(info.el, "no <area> with a polygon, circle or geocode: the gateway has nothing to target")


# --- 5. to our JSON alert ------------------------------------------------------


def _to_alert(ctx: Ctx, h: dict, infos: list[Info]) -> tuple[dict, list[str]]:
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
    alert["audience"] = {"areas": distinct_areas(ctx, infos)}
    expiries = [i.expires for i in infos if i.expires]
    if expiries:
        alert["expires"] = min(expiries).isoformat()
    response_types = list(dict.fromkeys(r for i in infos for r in i.response_types))
    return alert, response_types


def _content(ctx: Ctx, infos: list[Info]) -> dict[str, dict]:
    content: dict[str, dict] = {}
    owner: dict[str, Info] = {}  # lower-cased tag -> info that gave it: tags are case-insensitive
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


def _one_content(ctx: Ctx, info: Info) -> dict[str, str]:
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
        _sendable(ctx, child_of(info.el, "description"), body)
    out = {"headline": headline, "body": body}
    # Body and instruction are never cut: a truncated instruction can be worse
    # than none. Too long is the sender's to fix.
    if len(body) > _BODY_MAX:
        ctx.problem(child_of(info.el, "description"), f"<description> has {len(body)} characters; "
                                                    f"the gateway carries at most {_BODY_MAX}")
    if info.instruction:
        out["instruction"] = info.instruction
        _sendable(ctx, child_of(info.el, "instruction"), info.instruction)
        if len(info.instruction) > _INSTRUCTION_MAX:
            ctx.problem(child_of(info.el, "instruction"), f"<instruction> has {len(info.instruction)} characters; "
                                                        f"the gateway carries at most {_INSTRUCTION_MAX}")
    if info.web:
        link = _link(info.web)
        if link:
            out["link"] = link
        else:
            ctx.warn(child_of(info.el, "web"),
                     f"ignored: not an absolute http(s) URL of at most {_LINK_MAX} characters")
    return out


def _sendable(ctx: Ctx, el: ET.Element, text: str) -> None:
    """The API's rule for text that reaches residents (schemas.TEXT_PATTERN):
    XML already keeps out most control characters, not C1 nor DEL."""
    if not _SENDABLE_RE.match(text):
        ctx.problem(el, unsendable_detail(text))


def _one_line(ctx: Ctx, el: ET.Element, name: str, text: str, limit: int) -> str:
    """Headlines and event names are one line; CAP asks senders to keep headlines short."""
    named = child_of(el, name)
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


def _xsd_layer(ctx: Ctx, root: ET.Element) -> None:
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
