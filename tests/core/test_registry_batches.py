"""A whole import batch lands as if each resident had been written alone,
now that the batch's indexes are written with one command per kind."""

from __future__ import annotations

import os

from gateway import keys
from gateway.crypto import Vault
from gateway.geo import residents_in_areas
from gateway.registry import Registry, check_import

X, Y = "+821012345678", "+821087654321"


def resident(rid: str, district: str, number: str | None = None, lat: float | None = None) -> dict:
    doc = {"id": rid, "languages": ["ko"], "district": district, "contacts": []}
    if number:
        doc["contacts"].append({"type": "phone", "number": number, "handset": "feature_phone"})
    if lat is not None:
        doc["location"] = {"lat": lat, "lon": 126.98}
    return doc


async def test_a_number_passed_to_another_resident_in_one_import_finds_its_new_owner(redis):
    registry = Registry(redis, Vault(os.urandom(32), os.urandom(32)))
    await registry.import_many(check_import(enumerate([resident("r1", "D01", X)])))
    # The new owner comes first in the file, the old one gives the number up after.
    await registry.import_many(check_import(enumerate([resident("r2", "D01", X), resident("r1", "D01", Y)])))
    assert await registry.by_phone(X) == "r2"
    assert await registry.by_phone(Y) == "r1"


async def test_residents_who_moved_in_one_import_leave_their_old_district_and_point(redis):
    registry = Registry(redis, Vault(os.urandom(32), os.urandom(32)))
    town = [resident(f"r{i}", f"D{i % 3}", lat=37.57) for i in range(30)]
    await registry.import_many(check_import(enumerate(town)))
    moved = [resident(f"r{i}", "D9") for i in range(0, 30, 2)]
    counts = await registry.import_many(check_import(enumerate(moved)))
    assert counts["updated"] == 15
    assert {m.decode() for m in await redis.smembers(keys.district("D9"))} == {r["id"] for r in moved}
    stayed = {f"r{i}" for i in range(1, 30, 2)}
    assert set().union(*[{m.decode() for m in await redis.smembers(keys.district(f"D{d}"))} for d in range(3)]) \
        == stayed
    assert set(await residents_in_areas(redis, [{"circle": {"lat": 37.57, "lon": 126.98, "radius_km": 1}}])) \
        == stayed
    assert await redis.zcard(keys.RESIDENTS) == 30
