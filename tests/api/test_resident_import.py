"""A city's resident file with a few bad rows: by default nothing lands (the
agency fixes the file); asked to skip them, the good rows land, each bad row is
named by line and field, and running the same file again changes nothing."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway import keys
from gateway.resident_import import import_file
from simulator.city import generate

pytestmark = pytest.mark.e2e

ROWS = 5_000  # bench/resident_import.py runs 100,000


def city_file(rows: int, folder, seed: int = 5) -> tuple[bytes, dict[int, str]]:
    """NDJSON of a synthetic city, every 100th row spoilt in a different way: (file, line -> field named)."""
    residents = [orjson.loads(line) for line in generate(rows, seed, folder).residents.read_bytes().splitlines()]
    spoilers = [
        ("/languages/0", lambda r: {**r, "languages": ["not a tag"]}),
        ("/contacts/0/number", lambda r: {**r, "contacts": [{"type": "phone", "number": "12",
                                                              "handset": "feature_phone"}]}),
        ("/district", lambda r: {k: v for k, v in r.items() if k != "district"}),
        ("/colour", lambda r: {**r, "colour": "red"}),
    ]
    lines, bad = [], {}
    for i, r in enumerate(residents):
        if i % 100 == 99:
            field, spoil = spoilers[(i // 100) % len(spoilers)]
            r = spoil(r)
            bad[i + 1] = field
        lines.append(orjson.dumps(r))
    return b"\n".join(lines), bad


async def registry_digest(redis) -> tuple[int, str]:
    """Every key the registry writes, and a digest of their values."""
    names = sorted([k async for k in redis.scan_iter(keys.resident("*"), count=5000)]
                   + [k async for k in redis.scan_iter(keys.district("*"))]
                   + [k async for k in redis.scan_iter(keys.phone_lookup("*"), count=5000)]
                   + [keys.RESIDENTS.encode(), keys.RESIDENT_GEO.encode(), keys.RESIDENT_CHANGES.encode()])
    digests = await redis.execute_command("DEBUG", "DIGEST-VALUE", *names)
    return len(names), hashlib.sha256(b"".join(names) + b"".join(digests)).hexdigest()


async def post_import(city, body: bytes, query: str = "") -> tuple[int, dict]:
    async with city.http.post(f"{city.api}/v1/residents/import{query}", data=body,
                              headers={**city.auth, "Content-Type": "application/x-ndjson"}) as r:
        return r.status, await r.json(content_type=None)


async def test_skipping_bad_rows_lands_the_good_ones_names_each_bad_line_and_a_rerun_changes_nothing(city, tmp_path):
    body, bad = city_file(ROWS, tmp_path)
    status, first = await post_import(city, body, "?bad_rows=skip")
    assert status == 200, first
    assert first["imported"] == first["created"] == ROWS - len(bad) and first["bad_lines"] == len(bad)
    named = {e["line"]: e["field"] for e in first["errors"]}
    assert named == bad
    assert await city.redis.zcard(keys.RESIDENTS) == ROWS - len(bad)
    assert not await city.redis.exists(keys.resident(f"{orjson.loads(body.splitlines()[99])['id']}"))

    before = await registry_digest(city.redis)
    status, again = await post_import(city, body, "?bad_rows=skip")
    assert status == 200
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, ROWS - len(bad))
    assert await registry_digest(city.redis) == before


async def test_by_default_one_bad_row_and_nothing_lands(city, tmp_path):
    body, bad = city_file(300, tmp_path)
    status, problem = await post_import(city, body)
    assert status == 422 and problem["errors"][0]["field"] == f"line 100: {bad[100]}"
    assert await city.redis.zcard(keys.RESIDENTS) == 0


async def test_a_rerun_after_a_change_rewrites_only_the_changed_resident(city, tmp_path):
    lines = generate(50, 6, tmp_path).residents.read_bytes().splitlines()
    assert (await post_import(city, b"\n".join(lines)))[1]["created"] == 50
    renamed = orjson.loads(lines[7]) | {"name": "김영희 (married name)"}  # sealed: compared opened
    lines[7] = orjson.dumps(renamed)
    moved = orjson.loads(lines[8])
    moved["district"] = "11110" if moved["district"] != "11110" else "11140"
    lines[8] = orjson.dumps(moved)
    _, second = await post_import(city, b"\n".join(lines))
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 2, 48)
    assert moved["id"].encode() in await city.redis.smembers(keys.district(moved["district"]))


async def test_the_command_line_skips_bad_rows_the_same_way(city, tmp_path):
    body, bad = city_file(200, tmp_path)
    path = tmp_path / "residents.ndjson"
    path.write_bytes(body)
    counts, errors = await import_file(city.stack.settings, path, "ndjson", city.redis, skip_bad_rows=True)
    assert counts["created"] == 200 - len(bad) and {e["line"] for e in errors} == set(bad)
    counts, _ = await import_file(city.stack.settings, path, "ndjson", city.redis, skip_bad_rows=True)
    assert counts["unchanged"] == 200 - len(bad) and counts["created"] == counts["updated"] == 0
