"""Geographic targeting: which residents an audience's areas reach, and
whether an agency may target them.

Points are `[lat, lon]` (CAP order, WGS 84) in the API; shapely's x is the
longitude and y the latitude, so every geometry is built through `_xy`.

An audience reaches the union of its targets: named residents, districts,
and areas. Inside `areas`, CAP's advice holds: a geocode is the coarse twin
of the polygons and circles beside it ("SHOULD be used in concert with an
equivalent description in <polygon> and <circle>"). So when an audience has
shapes, a geocode reaches only the residents of its district whose home
point is unknown (no one in the area is missed for lack of coordinates, and
no one outside the drawn shape is reached); without shapes it reaches its
whole district. Geocodes name districts when their scheme is one of
`DISTRICT_GEOCODES`; others cannot be resolved here.

Two ways to the same answer:
- `residents_in_areas` asks Redis: GEOSEARCH BYBOX/BYRADIUS over the
  residents' GEO set as a coarse filter, then the exact test on the stored
  coordinates (the GEO set keeps points to ~0.5 m only). The fan-out uses it.
- `ResidentIndex` keeps every resident's point, district and plan-relevant
  profile in numpy arrays in the API process, follows registry changes
  through a stream, and answers audience previews in milliseconds.
Both use `Shape.contains`, so they agree to the resident.

Not handled: shapes crossing the antimeridian (no service area does).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import orjson
import shapely
from shapely.geometry import Polygon

from . import keys
from .registry import CHANGES_KEPT, every_resident_id
from .schemas import GEO_MAX_LAT
from .transitions import text

log = logging.getLogger("gateway.geo")

DISTRICT_GEOCODES = frozenset({"district", "SIG_CD"})
EARTH_RADIUS_KM = 6371.0088
# Redis measures with a slightly larger Earth (6372.797 km) and rounds points
# to its geohash cells: the coarse search is widened by this much.
_COARSE_FACTOR = 1.002
_COARSE_PAD_KM = 0.05
_CIRCLE_SIDES = 128
_CHUNK = 5000
# Residents the in-process index reads per round trip.  Its event loop is the
# API's: parsing a chunk's replies and indexing them (about 50 us a resident)
# holds every agency request for its length, so it stays near 15 ms.
_INDEX_CHUNK = 250


# Shapes ---------------------------------------------------------------------


def _xy(points: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    return [(lon, lat) for lat, lon in points]


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance; numpy arrays or floats."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def ring_problem(ring) -> str | None:
    """Why a polygon of [lat, lon] points cannot be an area (an alert's or an agency's), if it cannot."""
    if len(ring) < 4:
        return "a polygon needs at least 4 points (the first repeated last)"
    if ring[0] != ring[-1]:
        return "the polygon is not closed: its first and last points must be the same"
    for lat, lon in ring:
        if not (-GEO_MAX_LAT <= lat <= GEO_MAX_LAT and -180 <= lon <= 180):
            return f"{lat},{lon} is not a latitude,longitude the gateway maps (latitudes within +-{GEO_MAX_LAT})"
    # Made valid first, as Shape does: a bow tie encloses what it means, a line nothing.
    if shapely.make_valid(Polygon(_xy(ring))).area == 0:
        return "the polygon encloses no area: its points lie on one line"
    return None


@dataclass
class Shape:
    """One polygon or circle of an audience, tested against arrays of points."""

    index: int  # its place in audience.areas
    kind: str  # polygon | circle
    bbox: tuple[float, float, float, float]  # min lat, min lon, max lat, max lon
    polygon: object = None  # prepared shapely geometry (x = lon)
    circle: tuple[float, float, float] | None = None  # lat, lon, radius km

    @classmethod
    def of(cls, index: int, area: dict) -> "Shape":
        if "polygon" in area:
            geom = Polygon(_xy(area["polygon"]))
            if not geom.is_valid:  # a bow tie: what it encloses is still meant
                geom = shapely.make_valid(geom)
            shapely.prepare(geom)
            min_lon, min_lat, max_lon, max_lat = geom.bounds
            return cls(index, "polygon", (min_lat, min_lon, max_lat, max_lon), polygon=geom)
        c = area["circle"]
        lat, lon, r = c["lat"], c["lon"], c["radius_km"]
        dlat = math.degrees(r / EARTH_RADIUS_KM)
        cos = math.cos(math.radians(min(abs(lat) + dlat, 89.9)))
        dlon = min(180.0, math.degrees(r / EARTH_RADIUS_KM) / max(cos, 1e-6))
        return cls(index, "circle", (lat - dlat, lon - dlon, lat + dlat, lon + dlon), circle=(lat, lon, r))

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Which points are inside (the boundary counts as inside)."""
        if self.kind == "polygon":
            return shapely.intersects_xy(self.polygon, lon, lat)
        clat, clon, r = self.circle
        return haversine_km(clat, clon, lat, lon) <= r + 1e-9

    def in_bbox(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        min_lat, min_lon, max_lat, max_lon = self.bbox
        return (lat >= min_lat) & (lat <= max_lat) & (lon >= min_lon) & (lon <= max_lon)

    def geometry(self):
        """The shape as a shapely geometry (a circle as a fine polygon), for area checks."""
        if self.kind == "polygon":
            return self.polygon
        lat, lon, r = self.circle
        return Polygon(_xy(circle_points(lat, lon, r)))

    def geosearch(self) -> dict:
        """Arguments of a GEOSEARCH that finds at least every resident inside."""
        if self.kind == "circle":
            lat, lon, r = self.circle
            return {"longitude": lon, "latitude": lat, "radius": r * _COARSE_FACTOR + _COARSE_PAD_KM, "unit": "km"}
        min_lat, min_lon, max_lat, max_lon = self.bbox
        clat, clon = (min_lat + max_lat) / 2, (min_lon + max_lon) / 2
        # Redis measures a point's east-west offset along the point's own
        # latitude: the widest is the one nearest the equator.
        widest = min(abs(min_lat), abs(max_lat)) if min_lat * max_lat > 0 else 0.0
        km_per_deg = math.radians(1) * EARTH_RADIUS_KM
        width = (max_lon - min_lon) * km_per_deg * math.cos(math.radians(widest))
        height = (max_lat - min_lat) * km_per_deg
        return {"longitude": clon, "latitude": clat, "width": width * _COARSE_FACTOR + 2 * _COARSE_PAD_KM,
                "height": height * _COARSE_FACTOR + 2 * _COARSE_PAD_KM, "unit": "km"}


def circle_points(lat: float, lon: float, radius_km: float, sides: int = _CIRCLE_SIDES) -> list[list[float]]:
    """A closed ring of [lat, lon] points at `radius_km` around a centre."""
    d = radius_km / EARTH_RADIUS_KM
    p1, l1 = math.radians(lat), math.radians(lon)
    out = []
    for i in range(sides):
        b = 2 * math.pi * i / sides
        p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
        l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
        out.append([math.degrees(p2), math.degrees(l2)])
    return out + [out[0]]


@dataclass
class Targets:
    """An audience's `areas`, sorted: shapes, district geocodes, and geocodes we cannot read."""

    shapes: list[Shape] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    unknown: list[tuple[int, dict]] = field(default_factory=list)

    @classmethod
    def of(cls, areas: Sequence[dict]) -> "Targets":
        t = cls()
        for i, area in enumerate(areas):
            if "geocode" in area:
                g = area["geocode"]
                if g["name"] in DISTRICT_GEOCODES:
                    t.districts.append(g["value"])
                else:
                    t.unknown.append((i, g))
            else:
                t.shapes.append(Shape.of(i, area))
        return t


def audience_problems(audience: dict) -> list[dict]:
    """What JSON Schema cannot say about an audience's areas: polygons that are
    not closed or enclose nothing, and geocodes that would leave it targeting
    less than it says. For after schema validation; JSON pointers into the alert."""
    areas = audience.get("areas", ())
    out = [{"field": f"/audience/areas/{n}/polygon", "detail": problem}
           for n, shape in enumerate(areas)
           if isinstance(shape, dict) and shape.get("polygon") and (problem := ring_problem(shape["polygon"]))]
    t = Targets.of(areas)
    if t.shapes:
        return out  # beside shapes, a geocode only restates them
    return out + [{"field": f"/audience/areas/{i}/geocode/name",
                   "detail": f"the gateway cannot resolve {g['name']} codes; use one of {sorted(DISTRICT_GEOCODES)} "
                             "or give a polygon or circle"} for i, g in t.unknown]


# From Redis (the fan-out) -------------------------------------------------------


async def residents_in_areas(redis, areas: Sequence[dict]) -> list[str]:
    """Residents the areas reach, sorted by id: GEOSEARCH, then the exact test."""
    t = Targets.of(areas)
    found: set[str] = set()
    if t.shapes:
        pipe = redis.pipeline(transaction=False)
        for shape in t.shapes:
            args = shape.geosearch()
            pipe.geosearch(keys.RESIDENT_GEO, **args)
        candidates = sorted({text(m) for page in await pipe.execute() for m in page})
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start:start + _CHUNK]
            lat, lon = await _points(redis, chunk)
            inside = np.zeros(len(chunk), dtype=bool)
            for shape in t.shapes:
                inside |= shape.contains(lat, lon)
            found.update(rid for rid, ok in zip(chunk, inside) if ok)
    for code in t.districts:
        members = sorted(text(m) for m in await redis.smembers(keys.district(code)))
        if t.shapes and members:
            # Beside shapes, a geocode reaches only those we cannot place.
            scores = await redis.zmscore(keys.RESIDENT_GEO, members)
            members = [rid for rid, score in zip(members, scores) if score is None]
        found.update(members)
    return sorted(found)


async def _points(redis, rids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Exact home points from the profiles (NaN where there is none)."""
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hget(keys.resident(rid), "p")
    lat = np.full(len(rids), np.nan)
    lon = np.full(len(rids), np.nan)
    for i, p in enumerate(await pipe.execute()):
        loc = orjson.loads(p).get("loc") if p else None
        if loc:
            lat[i], lon[i] = loc
    return lat, lon


# An agency's area ---------------------------------------------------------------


@dataclass
class AgencyArea:
    """Where an agency may send: its districts and its polygons; empty means anywhere."""

    districts: frozenset[str] = frozenset()
    polygons: tuple = ()  # [[lat, lon], ...] rings
    _union: object = None
    _cover: object = None

    def __post_init__(self):
        if self.polygons:
            self._union = shapely.union_all([shapely.make_valid(Polygon(_xy(p))) for p in self.polygons])
            shapely.prepare(self._union)
            # 1e-7 degrees (~1 cm) forgives a shape drawn along the agency's own border.
            self._cover = self._union.buffer(1e-7)
            shapely.prepare(self._cover)

    @property
    def limited(self) -> bool:
        return bool(self.districts or self.polygons)

    def covers_shape(self, shape: Shape) -> bool:
        return self._cover is not None and self._cover.covers(shape.geometry())

    def holds_home(self, district: str, location: dict | None) -> bool:
        """One resident's home (district, and point if known) is inside; an
        unlimited area holds everyone. The same test as `holds`, for one."""
        if not self.limited or district in self.districts:
            return True
        return self._union is not None and location is not None \
            and bool(shapely.intersects_xy(self._union, location["lon"], location["lat"]))

    def holds(self, district: np.ndarray, district_codes: Sequence[str], lat: np.ndarray,
              lon: np.ndarray) -> np.ndarray:
        """Which residents (by district index and home point) live inside the area."""
        inside = np.isin(district, [i for i, code in enumerate(district_codes) if code in self.districts])
        if self._union is not None:
            located = ~np.isnan(lat)
            inside[located] |= shapely.intersects_xy(self._union, lon[located], lat[located])
        return inside


@functools.lru_cache(maxsize=256)
def agency_area(districts: frozenset[str], polygons_json: str) -> AgencyArea:
    """An agency's area, built once per process (its polygons may be detailed)."""
    return AgencyArea(districts, tuple(orjson.loads(polygons_json)))


# The in-process index ------------------------------------------------------------


# What the planner needs to know of a resident, so that residents who would
# get the same plan are counted together: needs, contact kinds, dead contacts,
# consent to non-emergency alerts and to drills, quiet hours.
KindKey = tuple


def kind_of(p: dict, x: bytes | None) -> KindKey:
    dead = tuple(sorted(int(i) for i in (x or b"").split(b",") if i))
    qh = orjson.dumps(p["qh"], option=orjson.OPT_SORT_KEYS).decode() if p.get("qh") else ""
    return (tuple(sorted(p["n"])), tuple((t, h) for t, h in p["k"]), dead, bool(p["ne"]), bool(p.get("dr")), qh)


@dataclass
class Snapshot:
    """Every live resident, in parallel arrays.  `rids` and `positions` are the
    index's own, shared and only ever appended to: a position below
    len(alive) keeps its meaning."""

    rids: list[str]
    lat: np.ndarray
    lon: np.ndarray
    district: np.ndarray  # index into districts
    kind: np.ndarray  # index into kinds
    alive: np.ndarray
    districts: list[str]
    kinds: list[KindKey]
    positions: dict[str, int]

    def __len__(self) -> int:
        return int(self.alive.sum())

    def district_mask(self, codes: Iterable[str]) -> np.ndarray:
        wanted = set(codes)
        return np.isin(self.district, [i for i, code in enumerate(self.districts) if code in wanted])

    def shapes_mask(self, shapes: Sequence[Shape]) -> np.ndarray:
        inside = np.zeros(len(self.alive), dtype=bool)
        located = ~np.isnan(self.lat)
        for shape in shapes:
            # The bounding box first: a cheap numpy pass, then shapely on the few.
            near = np.flatnonzero(located & shape.in_bbox(self.lat, self.lon))
            if near.size:
                inside[near[shape.contains(self.lat[near], self.lon[near])]] = True
        return inside

    def areas_mask(self, areas: Sequence[dict]) -> np.ndarray:
        t = Targets.of(areas)
        mask = self.shapes_mask(t.shapes)
        if t.districts:
            by_code = self.district_mask(t.districts)
            mask |= by_code & np.isnan(self.lat) if t.shapes else by_code
        return mask

    def audience_mask(self, audience: dict) -> np.ndarray:
        if audience.get("everyone"):
            return self.alive.copy()
        mask = np.zeros(len(self.alive), dtype=bool)
        for rid in audience.get("residents", ()):
            i = self.positions.get(rid)
            if i is not None and i < len(mask):
                mask[i] = True
        if audience.get("districts"):
            mask |= self.district_mask(audience["districts"])
        if audience.get("areas"):
            mask |= self.areas_mask(audience["areas"])
        return mask & self.alive

    def drill_volunteers(self) -> np.ndarray:
        volunteers = np.array([k[4] for k in self.kinds] or [False], dtype=bool)
        return volunteers[self.kind]


class ResidentIndex:
    """Residents' points, districts and plan kinds, kept in this process.

    Built once from the registry (a few seconds per 100,000 residents), then
    kept current by reading `residents:changes`, the stream the registry
    appends every changed resident id to; if the stream was trimmed past
    what this index has seen, it is built again.
    """

    def __init__(self, redis):
        self.redis = redis
        self._lock = asyncio.Lock()
        self._cursor: str | None = None
        self._epoch: bytes | None = None
        self._clear()

    def _clear(self) -> None:
        self.rids: list[str] = []
        self.positions: dict[str, int] = {}
        # Numpy columns with room to grow, filled up to len(self.rids): a
        # snapshot is then one copy of each (a few ms at a million residents),
        # not arrays built anew from Python lists (0.4 s, and the API's event
        # loop held for all of it, after any resident changed).
        self._lat = np.empty(0, dtype=float)
        self._lon = np.empty(0, dtype=float)
        self._district = np.empty(0, dtype=np.int32)
        self._kind = np.empty(0, dtype=np.int32)
        self._alive = np.empty(0, dtype=bool)
        self.districts: list[str] = []
        self._district_ids: dict[str, int] = {}
        self.kinds: list[KindKey] = []
        self._kind_ids: dict[KindKey, int] = {}
        self._snapshot: Snapshot | None = None

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            await self._refresh()
            if self._snapshot is None:
                n = len(self.rids)
                self._snapshot = Snapshot(
                    self.rids, self._lat[:n].copy(), self._lon[:n].copy(), self._district[:n].copy(), self._kind[:n].copy(),
                    self._alive[:n].copy(), list(self.districts), list(self.kinds), self.positions)
            return self._snapshot

    def _grow(self) -> None:
        room = max(1024, 2 * len(self._alive))
        self._lat, self._lon, self._district, self._kind, self._alive = (
            np.resize(column, room) for column in (self._lat, self._lon, self._district, self._kind, self._alive))

    async def _refresh(self) -> None:
        if self._cursor is None:
            await self._rebuild()
            return
        if await self.redis.get(keys.RESIDENT_EPOCH) != self._epoch:
            log.info("the resident registry was wiped; rebuilding")
            await self._rebuild()
            return
        if await self._missed_changes():
            log.info("the resident change stream was trimmed past this index; rebuilding")
            await self._rebuild()
            return
        changed: dict[str, None] = {}
        while True:
            entries = await self.redis.xrange(keys.RESIDENT_CHANGES, f"({self._cursor}", "+", count=_INDEX_CHUNK)
            if not entries:
                break
            for entry_id, fields in entries:
                changed[text(fields[b"r"])] = None
            self._cursor = text(entries[-1][0])
        if changed:
            await self._load(list(changed))

    async def _missed_changes(self) -> bool:
        """Whether entries this index has not read were trimmed (or the stream wiped)."""
        if self._cursor == "0-0":  # the stream was empty when the index was built
            return await self.redis.xlen(keys.RESIDENT_CHANGES) >= CHANGES_KEPT
        # Trimming drops the oldest first: while the last entry read is there, nothing newer went.
        return not await self.redis.xrange(keys.RESIDENT_CHANGES, self._cursor, self._cursor)

    async def _rebuild(self) -> None:
        self._clear()
        await self.redis.set(keys.RESIDENT_EPOCH, secrets.token_hex(8), nx=True)
        self._epoch = await self.redis.get(keys.RESIDENT_EPOCH)
        last = await self.redis.xrevrange(keys.RESIDENT_CHANGES, "+", "-", count=1)
        self._cursor = text(last[0][0]) if last else "0-0"
        rids = await every_resident_id(self.redis)
        await self._load(rids)

    async def _load(self, rids: list[str]) -> None:
        for start in range(0, len(rids), _INDEX_CHUNK):
            chunk = rids[start:start + _INDEX_CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for rid in chunk:
                pipe.hmget(keys.resident(rid), "p", "x")
            for rid, (p, x) in zip(chunk, await pipe.execute()):
                self._put(rid, orjson.loads(p) if p else None, x)
        self._snapshot = None

    def _put(self, rid: str, p: dict | None, x: bytes | None) -> None:
        i = self.positions.get(rid)
        if p is None:
            if i is not None:
                self._alive[i] = False
            return
        loc = p.get("loc") or (math.nan, math.nan)
        district = self._district_ids.setdefault(p["d"], len(self._district_ids))
        if district == len(self.districts):
            self.districts.append(p["d"])
        key = kind_of(p, x)
        kind = self._kind_ids.setdefault(key, len(self._kind_ids))
        if kind == len(self.kinds):
            self.kinds.append(key)
        if i is None:
            i = self.positions[rid] = len(self.rids)
            self.rids.append(rid)
            if i == len(self._alive):
                self._grow()
        self._lat[i], self._lon[i], self._district[i], self._kind[i], self._alive[i] = (
            loc[0], loc[1], district, kind, True)

