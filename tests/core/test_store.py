"""The state store's client: what the gateway sends reaches Redis intact."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_sentinel import SentinelGroup

from gateway.embedded_redis import _broker_from_redis_url
from gateway.store import STORE_TIMEOUT_S, SentinelUrl, connect


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


async def test_a_webhook_waiting_for_a_connection_is_served_before_one_that_asks_later(redis_url):
    # One connection, so the order is plain: a handler that has just given its
    # connection back and asks again must queue behind the one already waiting
    # (redis-py's blocking pool let it go first, and waiters starved for 15-30 s).
    client = connect(redis_url, max_connections=1)
    pool = client.connection_pool
    served = []

    async def ask(name: str) -> None:
        conn = await pool.get_connection()
        served.append(name)
        await conn.send_command("PING")
        await conn.read_response()
        await pool.release(conn)

    held = await pool.get_connection()
    waiting = asyncio.create_task(ask("waited"))
    await asyncio.sleep(0.05)
    await pool.release(held)
    await ask("asked later")
    await waiting
    await client.aclose()
    assert served == ["waited", "asked later"]


async def test_the_pool_tells_metrics_how_close_it_came_to_running_dry_since_it_last_asked(redis_url):
    # /metrics reads the mark at each scrape: a moment with one connection left between
    # two scrapes must show, though the pool is whole again when the scraper asks.
    client = connect(redis_url, max_connections=3)
    pool = client.connection_pool
    first, second = await pool.get_connection(), await pool.get_connection()
    await pool.release(first)
    await pool.release(second)
    assert pool.fewest_idle() == 1
    assert pool.fewest_idle() == 3
    await client.aclose()


async def test_callers_that_give_up_waiting_take_no_connection_with_them(redis_url):
    # Handlers cut off by their timeout at every point of the pool's hand-over,
    # as webhooks are when Redis stalls: afterwards the pool is whole.
    client = connect(redis_url, max_connections=2)
    pool = client.connection_pool
    rng = random.Random(7)

    async def impatient() -> None:
        for _ in range(40):
            try:
                async with asyncio.timeout(rng.uniform(0, 0.004)):
                    conn = await pool.get_connection()
                    try:
                        await asyncio.sleep(rng.uniform(0, 0.002))
                    finally:
                        await pool.release(conn)
            except TimeoutError:
                pass

    await asyncio.gather(*(impatient() for _ in range(30)))
    assert len(pool._in_use_connections) == 0
    async with asyncio.timeout(2):
        assert await asyncio.gather(client.ping(), client.ping()) == [True, True]
    await client.aclose()



async def test_a_command_to_a_redis_that_answers_nothing_fails_within_seconds():
    # A link that loses what is sent (a cable pulled, a host gone) answers
    # nothing, refuses nothing: without a timeout a command waits until TCP
    # gives up, minutes later, and a pump or worker waits with it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel completes the handshake; nobody ever reads or answers
    client = connect(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    started = time.monotonic()
    try:
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await asyncio.wait_for(client.ping(), STORE_TIMEOUT_S * 3)
    finally:
        await client.aclose()
        silent.close()
    assert time.monotonic() - started < STORE_TIMEOUT_S + 2


async def test_through_sentinel_a_client_carries_on_against_the_new_primary_when_the_old_one_dies(tmp_path):
    group = SentinelGroup(tmp_path).start()
    client = connect(group.url)
    try:
        count = client.register_script(_COUNT)
        for _ in range(3):
            pipe = client.pipeline(transaction=False)
            await count(keys=["n"], args=[], client=pipe)
            await pipe.execute()
        await client.wait(1, 2000)  # the replica has every write before the kill
        group.kill_primary()
        # The next batch waits out the election, then runs on the replica made primary,
        # loading its script there if the new primary lacks it.
        pipe = client.pipeline(transaction=False)
        await count(keys=["n"], args=[], client=pipe)
        assert await pipe.execute() == [b"4"]
        assert group.primary_port() == group.ports["replica"]
    finally:
        await client.aclose()
        group.stop()


def test_a_sentinel_url_names_its_sentinels_service_and_database():
    url = SentinelUrl.parse("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2/gateway/2")
    assert url == SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26379)), "gateway", 2, None, "s@cret")
    # Celery's broker on the same Redis, one database up, in kombu's form.
    broker, options = SentinelUrl.parse(_broker_from_redis_url("redis+sentinel://h1:1,h2:2/gateway/0")).broker()
    assert broker == "sentinel://h1:1/1;sentinel://h2:2/1"
    assert options["master_name"] == "gateway"
    with pytest.raises(ValueError, match="service_name"):
        SentinelUrl.parse("redis+sentinel://10.0.0.1:26379")
