"""CAP <area> <-> the `audience.areas` of our JSON alert: polygons, circles
and geocodes read with every problem named, and written back out."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from gateway.problems import unsendable_detail
from gateway.schemas import ALERT, GEO_MAX_LAT, TEXT_PATTERN

from .vocabulary import add, add_pair, child_of, children_of, text_of

if TYPE_CHECKING:
    from .parse import Ctx, Info

# Limits of our JSON alert's areas, read from the schema so they cannot drift.
_AREAS = ALERT["properties"]["audience"]["properties"]["areas"]
_MAX_AREAS = _AREAS["maxItems"]
_POLYGON_MAX = _AREAS["items"]["oneOf"][0]["properties"]["polygon"]["maxItems"]
_RADIUS_MAX = _AREAS["items"]["oneOf"][1]["properties"]["circle"]["properties"]["radius_km"]["maximum"]
_GEOCODE = _AREAS["items"]["oneOf"][2]["properties"]["geocode"]["properties"]
_SENDABLE_RE = re.compile(TEXT_PATTERN)
_DECIMAL_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


# --- reading ---------------------------------------------------------------------


def read_area(ctx: Ctx, el: ET.Element) -> list[dict]:
    shapes: list[dict] = []
    for child in children_of(el, "polygon"):
        points = _polygon(ctx, child)
        if points:
            shapes.append({"polygon": points})
    for child in children_of(el, "circle"):
        circle = _circle(ctx, child)
        if circle:
            shapes.append({"circle": circle})
    for child in children_of(el, "geocode"):
        name, value = text_of(child, "valueName"), text_of(child, "value")
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
    if _decimal(ctx, el, "ceiling") is not None and child_of(el, "altitude") is None:
        ctx.problem(child_of(el, "ceiling"), "<ceiling> may only be used together with <altitude>")
    if not shape_elements(el):
        ctx.warn(el, "has only a description (no polygon, circle or geocode): nothing to target")
    return shapes


def _decimal(ctx: Ctx, parent: ET.Element, name: str) -> float | None:
    child = child_of(parent, name)
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


def _polygon(ctx: Ctx, el: ET.Element) -> list[list[float]] | None:
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


def _circle(ctx: Ctx, el: ET.Element) -> dict | None:
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


def shape_elements(area: ET.Element) -> list[ET.Element]:
    return children_of(area, "polygon") + children_of(area, "circle") + children_of(area, "geocode")


def distinct_areas(ctx: Ctx, infos: list[Info]) -> list[dict]:
    # Each language's info usually repeats the same areas: keep one of each.
    unique = {json.dumps(a, sort_keys=True): a for i in infos for a in i.areas}
    areas = list(unique.values())
    if len(areas) > _MAX_AREAS:
        ctx.problem("alert", f"{len(areas)} distinct polygons, circles and geocodes; "
                             f"the gateway takes at most {_MAX_AREAS}")
    return areas


# --- writing ---------------------------------------------------------------------


def emit_area(info: ET.Element, shape: dict) -> None:
    # One <area> per shape, so that each gets its own areaDesc.
    area = add(info, "area")
    if "polygon" in shape:
        points = shape["polygon"]
        add(area, "areaDesc", f"Polygon of {len(points) - 1} corners")
        add(area, "polygon", " ".join(f"{_dec(lat)},{_dec(lon)}" for lat, lon in points))
    elif "circle" in shape:
        c = shape["circle"]
        add(area, "areaDesc", f"Within {_dec(c['radius_km'])} km of {_dec(c['lat'])},{_dec(c['lon'])}")
        add(area, "circle", f"{_dec(c['lat'])},{_dec(c['lon'])} {_dec(c['radius_km'])}")
    else:
        g = shape["geocode"]
        add(area, "areaDesc", f"{g['name']} {g['value']}")
        add_pair(area, "geocode", g["name"], g["value"])


def _dec(x: float) -> str:
    """A number as a CAP decimal: no exponent, no trailing '.0', full precision."""
    text = repr(float(x))
    if "e" in text or "E" in text:
        text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text.removesuffix(".0")
