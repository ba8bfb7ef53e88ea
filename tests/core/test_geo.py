"""Geographic targeting (gateway/geo.py): the right residents, by Redis and by the in-process index."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench.audience import (
    FLOOD_CIRCLE,
    HEAT_POLYGON,
    L_POLYGON,
    brute_force,
    synthetic_residents,
)
from gateway import keys
from gateway.crypto import Vault
from gateway.geo import (
    AgencyArea,
    ResidentIndex,
    Shape,
    audience_problems,
    circle_points,
    residents_in_areas,
    ring_problem,
)
from gateway.registry import Registry

SEOUL_CITY_HALL = (37.5663, 126.9779)




@pytest.fixture
def registry(redis):
    return Registry(redis, Vault(os.urandom(32), os.urandom(32)))


@pytest.fixture(scope="module")
def town():
    return synthetic_residents(3000, seed=5)


@pytest.fixture
async def stored(registry, town):
    await registry.put_many(town)
    return town


def resident(rid: str, lat: float | None = None, lon: float | None = None, district: str = "11110") -> dict:
    doc = {"id": rid, "languages": ["ko"], "district": district, "contacts": []}
    if lat is not None:
        doc["location"] = {"lat": lat, "lon": lon}
    return doc


# Shapes ---------------------------------------------------------------------------


def test_polygon_points_are_lat_lon_not_x_y():
    shape = Shape.of(0, {"polygon": HEAT_POLYGON})
    lat, lon = np.array([SEOUL_CITY_HALL[0]]), np.array([SEOUL_CITY_HALL[1]])
    assert shape.contains(lat, lon)[0]
    assert not shape.contains(lon, lat)[0]


def test_a_resident_on_the_border_of_a_polygon_is_inside():
    shape = Shape.of(0, {"polygon": HEAT_POLYGON})
    corner, edge_mid = HEAT_POLYGON[1], [37.5950, 126.99]
    assert shape.contains(np.array([corner[0], edge_mid[0]]), np.array([corner[1], edge_mid[1]])).all()


def test_a_concave_polygon_leaves_out_its_notch():
    shape = Shape.of(0, {"polygon": L_POLYGON})
    notch, leg = (37.565, 126.97), (37.535, 126.97)
    assert not shape.contains(np.array([notch[0]]), np.array([notch[1]]))[0]
    assert shape.contains(np.array([leg[0]]), np.array([leg[1]]))[0]


def test_a_bow_tie_polygon_still_targets_both_of_its_halves():
    bow = [[37.50, 127.00], [37.60, 127.10], [37.60, 127.00], [37.50, 127.10], [37.50, 127.00]]
    shape = Shape.of(0, {"polygon": bow})
    assert shape.contains(np.array([37.52, 37.58]), np.array([127.05, 127.05])).all()


def test_a_circle_is_measured_on_the_earth():
    shape = Shape.of(0, {"circle": FLOOD_CIRCLE})
    # 1 degree of latitude is ~111.2 km: 3.4 km north is in, 3.6 km is out.
    north = FLOOD_CIRCLE["lat"] + np.array([3.4, 3.6]) / 111.195
    assert list(shape.contains(north, np.full(2, FLOOD_CIRCLE["lon"]))) == [True, False]


def test_circle_points_lie_on_the_circle():
    ring = circle_points(37.5, 127.0, 5.0)
    shape = Shape.of(0, {"circle": {"lat": 37.5, "lon": 127.0, "radius_km": 5.0001}})
    assert ring[0] == ring[-1]
    assert shape.contains(np.array([p[0] for p in ring]), np.array([p[1] for p in ring])).all()


def test_geocodes_the_gateway_cannot_read_are_refused_unless_shapes_say_it_all():
    alone = {"areas": [{"geocode": {"name": "SAME", "value": "006037"}}]}
    assert [e["field"] for e in audience_problems(alone)] == ["/audience/areas/0/geocode/name"]
    beside = {"areas": [{"polygon": HEAT_POLYGON}, {"geocode": {"name": "SAME", "value": "006037"}}]}
    assert audience_problems(beside) == []
    assert audience_problems({"areas": [{"geocode": {"name": "SIG_CD", "value": "11110"}}]}) == []


# The registry keeps the GEO index --------------------------------------------------


async def test_a_resident_is_placed_on_the_map_moved_and_removed(redis, registry):
    await registry.put_many([resident("a", 37.57, 126.98)])
    (lon, lat), = await redis.geopos(keys.RESIDENT_GEO, "a")
    assert abs(lat - 37.57) < 1e-5 and abs(lon - 126.98) < 1e-5
    await registry.put_many([resident("a")])  # replaced without a home point
    assert await redis.geopos(keys.RESIDENT_GEO, "a") == [None]
    await registry.put_many([resident("a", 37.57, 126.98)])
    await registry.delete("a")
    assert await redis.zcard(keys.RESIDENT_GEO) == 0


# Resolving through Redis (the fan-out) --------------------------------------------


@pytest.mark.parametrize("areas,polygon,circle", [
    ([{"polygon": HEAT_POLYGON}], HEAT_POLYGON, None),
    ([{"polygon": L_POLYGON}], L_POLYGON, None),
    ([{"circle": FLOOD_CIRCLE}], None, FLOOD_CIRCLE),
])
async def test_the_fan_out_reaches_exactly_the_residents_inside(redis, stored, areas, polygon, circle):
    expected = brute_force(stored, polygon=polygon, circle=circle)
    assert expected  # the sample town has people there
    assert set(await residents_in_areas(redis, areas)) == expected


async def test_residents_in_the_corners_of_a_shapes_bounding_box_are_found(redis, registry):
    box = [[37.50, 126.90], [37.60, 126.90], [37.60, 127.10], [37.50, 127.10], [37.50, 126.90]]
    corners = [resident(f"c{i}", lat, lon) for i, (lat, lon) in enumerate(box[:4])]
    await registry.put_many(corners + [resident("out", 37.6001, 127.0)])
    assert await residents_in_areas(redis, [{"polygon": box}]) == ["c0", "c1", "c2", "c3"]


async def test_beside_a_shape_a_geocode_reaches_only_those_without_a_home_point(redis, registry):
    await registry.put_many([resident("inside", 37.57, 126.98), resident("far", 37.65, 127.20),
                             resident("unplaced"), resident("elsewhere", district="11680")])
    with_shape = [{"polygon": HEAT_POLYGON}, {"geocode": {"name": "SIG_CD", "value": "11110"}}]
    assert await residents_in_areas(redis, with_shape) == ["inside", "unplaced"]
    alone = [{"geocode": {"name": "district", "value": "11110"}}]
    assert await residents_in_areas(redis, alone) == ["far", "inside", "unplaced"]


# The in-process index (previews) ----------------------------------------------------


async def test_the_index_agrees_with_brute_force(redis, stored):
    snap = await ResidentIndex(redis).snapshot()
    assert len(snap) == len(stored)
    for areas, polygon, circle in (([{"polygon": HEAT_POLYGON}], HEAT_POLYGON, None),
                                   ([{"circle": FLOOD_CIRCLE}], None, FLOOD_CIRCLE)):
        mask = snap.audience_mask({"areas": areas})
        assert {snap.rids[i] for i in np.flatnonzero(mask)} == brute_force(stored, polygon=polygon, circle=circle)


async def test_the_index_follows_the_registry(redis, registry):
    await registry.put_many([resident("a", 37.57, 126.98), resident("b", 37.57, 126.98)])
    index = ResidentIndex(redis)
    inside = {"areas": [{"polygon": HEAT_POLYGON}]}

    def reached(snap):
        return sorted(snap.rids[i] for i in np.flatnonzero(snap.audience_mask(inside)))

    assert reached(await index.snapshot()) == ["a", "b"]
    await registry.put_many([resident("a", 37.65, 127.20), resident("c", 37.58, 126.99)])  # a moves away
    await registry.delete("b")
    assert reached(await index.snapshot()) == ["c"]
    await registry.mark_dead("c", 0)  # a dead contact changes the plan: the index hears of it
    snap = await index.snapshot()
    assert snap.kinds[snap.kind[snap.positions["c"]]][2] == (0,)
    await redis.flushdb()  # a wiped registry is noticed
    await registry.put_many([resident("d", 37.57, 126.98)])
    assert reached(await index.snapshot()) == ["d"]


async def test_a_preview_in_hand_is_not_changed_by_residents_arriving_or_moving(redis, registry):
    # Past the index's first columns' room (1,024), so they grow while a snapshot is held.
    await registry.put_many([resident(f"r{i:04d}", 37.57, 126.98) for i in range(1500)])
    index = ResidentIndex(redis)
    inside = {"areas": [{"polygon": HEAT_POLYGON}]}
    before = await index.snapshot()
    await registry.put_many([resident("r0000", 37.65, 127.20)]  # moves away
                            + [resident(f"n{i:04d}", 37.57, 126.98) for i in range(1500)])
    await registry.delete("r0001")
    after = await index.snapshot()
    assert int(before.audience_mask(inside).sum()) == 1500
    assert len(before) == 1500 and before.lat[before.positions["r0000"]] == 37.57
    reached = {after.rids[i] for i in np.flatnonzero(after.audience_mask(inside))}
    assert len(after) == 2999 and len(reached) == 2998
    assert "r0000" not in reached and "r0001" not in reached and "n1499" in reached


async def test_drills_reach_only_volunteers_in_the_index(redis, stored):
    snap = await ResidentIndex(redis).snapshot()
    volunteers = {r["id"] for r in stored if r["consent"]["drills"]}
    assert {snap.rids[i] for i in np.flatnonzero(snap.alive & snap.drill_volunteers())} == volunteers


# An agency's area ---------------------------------------------------------------------


def test_a_polygon_beyond_the_latitudes_redis_maps_is_refused_for_agencies_and_alerts():
    polar = [[84.0, 0.0], [89.0, 0.0], [89.0, 10.0], [84.0, 0.0]]
    assert "85.05112878" in ring_problem(polar)
    assert ring_problem([[37.5, 126.9], [37.6, 126.9], [37.6, 127.0], [37.5, 126.9]]) is None


def test_an_agency_polygon_covers_what_is_inside_it_and_not_what_crosses_it():
    area = AgencyArea(polygons=(tuple(map(tuple, HEAT_POLYGON)),))
    inner = Shape.of(0, {"circle": {"lat": 37.575, "lon": 126.99, "radius_km": 0.5}})
    crossing = Shape.of(1, {"circle": {"lat": 37.575, "lon": 126.99, "radius_km": 5}})
    assert area.covers_shape(inner)
    assert area.covers_shape(Shape.of(2, {"polygon": HEAT_POLYGON}))  # its own border is fine
    assert not area.covers_shape(crossing)


def test_an_agency_holds_residents_of_its_districts_and_inside_its_polygons():
    area = AgencyArea(districts=frozenset({"11680"}), polygons=(tuple(map(tuple, HEAT_POLYGON)),))
    codes = ["11110", "11680"]
    district = np.array([0, 1, 0, 0])
    lat = np.array([37.57, 37.50, 37.65, np.nan])
    lon = np.array([126.98, 127.05, 127.20, np.nan])
    assert list(area.holds(district, codes, lat, lon)) == [True, True, False, False]
    # One resident at a time, as the residents API asks: the same answers.
    homes = [("11110", {"lat": 37.57, "lon": 126.98}), ("11680", {"lat": 37.50, "lon": 127.05}),
             ("11110", {"lat": 37.65, "lon": 127.20}), ("11110", None)]
    assert [area.holds_home(d, loc) for d, loc in homes] == [True, True, False, False]
    assert AgencyArea().holds_home("11110", None)  # a city-wide agency holds everyone
