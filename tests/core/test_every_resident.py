"""An alert to everyone reaches every resident exactly once, however many pages the read takes."""

from __future__ import annotations

from gateway import keys
from gateway.registry import every_resident_id


async def test_every_resident_is_read_once_across_page_boundaries(redis):
    ids = [f"r{i:03d}" for i in range(12)] + ["r(005", "r[x]", "r-"]
    await redis.zadd(keys.RESIDENTS, {rid: 0 for rid in ids})
    for page in (1, 5, 12, 15, 100):
        assert await every_resident_id(redis, page=page) == sorted(ids)


async def test_no_residents_is_an_empty_audience(redis):
    assert await every_resident_id(redis) == []
