"""The state store's client: what the gateway sends reaches Redis intact."""

from __future__ import annotations

import pytest
from redis.exceptions import DataError, ResponseError

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


_COUNT = "redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])"


async def _script_calls(client) -> int:
    """SCRIPT EXISTS and LOAD calls (Redis 6 counts them as one command, 7 apart)."""
    return sum(v["calls"] for k, v in (await client.info("commandstats")).items() if k.startswith("cmdstat_script"))


async def test_a_batch_asks_whether_its_script_is_loaded_only_the_first_time(redis_url, redis):
    client = connect(redis_url)
    count = client.register_script(_COUNT)
    await count(keys=["n"], args=[])  # loaded on the server
    before = await _script_calls(client)
    for _ in range(5):
        pipe = client.pipeline(transaction=False)
        await count(keys=["n"], args=[], client=pipe)
        pipe.incr("plain")
        await pipe.execute()
    assert await _script_calls(client) - before == 1
    assert (await client.get("n"), await client.get("plain")) == (b"6", b"5")
    await client.aclose()


async def test_after_redis_loses_its_scripts_each_command_of_a_batch_still_runs_once(redis_url, redis):
    client = connect(redis_url)
    count = client.register_script(_COUNT)
    pipe = client.pipeline(transaction=False)
    await count(keys=["n"], args=[], client=pipe)
    await pipe.execute()
    await client.script_flush()  # as after a restart: the server knows no script
    pipe = client.pipeline(transaction=False)
    pipe.incr("plain")
    await count(keys=["n"], args=[], client=pipe)
    pipe.incr("plain")
    await count(keys=["n"], args=[], client=pipe)
    assert await pipe.execute() == [1, b"2", 2, b"3"]
    assert await client.get("plain") == b"2"
    await client.aclose()


async def test_a_failing_command_in_a_batch_is_still_raised(redis_url, redis):
    client = connect(redis_url)
    count = client.register_script(_COUNT)
    await client.set("text", "not a number")
    pipe = client.pipeline(transaction=False)
    await count(keys=["text"], args=[], client=pipe)
    with pytest.raises(ResponseError):
        await pipe.execute()
    await client.aclose()
