"""The state store's client: what the gateway sends reaches Redis intact."""

from __future__ import annotations

import pytest
from redis.exceptions import DataError

from gateway.store import connect


async def test_values_of_every_kind_round_trip(redis_url, redis):
    client = connect(redis_url)
    values = {"text": "폭염 경보 🔥", "int": 1763700000000, "float": 2.5, "bytes": b"\x00\xff", "empty": ""}
    await client.hset("h", mapping=values)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall("h")
    pipe.config_get("maxmemory")  # a two-word command name
    stored, config = await pipe.execute()
    await client.aclose()
    assert stored == {b"text": "폭염 경보 🔥".encode(), b"int": b"1763700000000", b"float": b"2.5",
                      b"bytes": b"\x00\xff", b"empty": b""}
    assert b"maxmemory" in config or "maxmemory" in config


async def test_a_value_redis_cannot_hold_is_refused_before_sending(redis_url, redis):
    client = connect(redis_url)
    with pytest.raises(DataError):
        await client.set("k", None)
    assert await client.exists("k") == 0
    await client.aclose()
