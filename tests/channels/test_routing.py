"""SMS traffic follows provider health, shared by every worker through Redis."""

from __future__ import annotations

import logging
import random

import pytest

from channels.routing import (
    BUCKET_S,
    WINDOW_BUCKETS,
    Health,
    Router,
    current_split,
    parse_base,
    shares,
)
from gateway import keys
from gateway.store import connect

PRIMARY_AND_STANDBY = {"twilio": 1.0, "kannel": 0.0}




class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def router(redis, clock, base=PRIMARY_AND_STANDBY, seed=1) -> Router:
    return Router(redis, "sms", base, clock=clock, rng=random.Random(seed))


async def fail(r: Router, provider: str, n: int) -> None:
    for _ in range(n):
        r.record(provider, failed=1)
    await r.flush()


async def succeed(r: Router, provider: str, n: int, receipt_ms: int = 2000) -> None:
    for _ in range(n):
        r.record(provider, sent=1)
        r.record(provider, delivered=1, receipt_ms=receipt_ms)
    await r.flush()


async def test_a_healthy_primary_keeps_all_traffic_and_the_standby_waits(redis):
    r = router(redis, Clock())
    await succeed(r, "twilio", 20)
    assert await r.split() == {"twilio": 1.0, "kannel": 0.0}
    order = r.order(await r.split())
    assert order == ["twilio", "kannel"]  # the standby is still there to fail over to


async def test_a_provider_that_fails_at_once_hands_its_traffic_to_the_standby(redis, caplog):
    clock = Clock()
    r = router(redis, clock)
    await succeed(r, "twilio", 10)
    await r.refresh()
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="channels.routing"):
        await fail(r, "twilio", 40)
    split = await r.split()
    assert split["kannel"] > 0.75
    assert split["twilio"] >= 0.05  # a probe share, to see it come back
    assert any("SMS traffic switched" in m and "kannel" in m for m in caplog.messages)
    shown = await current_split(redis)
    assert shown["shares"]["kannel"] == pytest.approx(split["kannel"])
    assert shown["switches"][0]["from"] == "twilio=100,kannel=0"
    assert "twilio: 40/50 failed" in shown["switches"][0]["reason"]


async def test_traffic_drifts_back_as_the_provider_recovers(redis):
    clock = Clock()
    r = router(redis, clock)
    await fail(r, "twilio", 20)
    await r.refresh()
    down = (await r.split())["twilio"]
    clock.now += 3 * BUCKET_S
    await succeed(r, "twilio", 40)
    await r.refresh()
    recovering = (await r.split())["twilio"]
    clock.now += WINDOW_BUCKETS * BUCKET_S
    await succeed(r, "twilio", 10)
    await r.refresh()
    assert down < recovering < 1.0
    assert (await r.split())["twilio"] == 1.0
    switches = (await current_split(redis))["switches"]
    assert switches[0]["to"] == "twilio=100,kannel=0"


async def test_every_worker_sees_the_switch_but_it_is_published_once(redis, redis_url):
    clock = Clock()
    other_client = connect(redis_url)
    workers = [router(redis, clock), router(other_client, clock)]
    for w in workers:
        await w.refresh()
    await fail(workers[0], "twilio", 30)
    for w in workers:
        await w.refresh()
    assert workers[0]._split == workers[1]._split
    switches = (await current_split(redis))["switches"]
    assert [s["to"] for s in switches].count(switches[0]["to"]) == 1
    await other_client.aclose()


async def test_slow_delivery_receipts_cost_a_provider_share(redis):
    r = router(redis, Clock(), base={"twilio": 50, "kannel": 50})
    await succeed(r, "twilio", 10, receipt_ms=2_000)
    await succeed(r, "kannel", 10, receipt_ms=600_000)
    split = await r.split()
    assert split["twilio"] > 0.75


def test_a_split_between_active_providers_moves_the_lost_share_to_the_healthy_one():
    split = shares({"a": 70, "b": 30}, {"a": 0.0, "b": 1.0})
    assert split["a"] == pytest.approx(0.035)
    assert split["b"] == pytest.approx(0.965)


def test_when_everything_is_down_the_preference_stands():
    assert shares(PRIMARY_AND_STANDBY, {"twilio": 0.0, "kannel": 0.0}) == {"twilio": 1.0, "kannel": 0.0}


def test_a_few_failures_say_nothing_yet():
    assert Health("twilio", failed=3).score == 1.0
    assert Health("twilio", sent=5, failed=5).score == 0.5


def test_the_draw_follows_the_shares():
    r = Router(None, "sms", {"twilio": 1, "kannel": 1}, rng=random.Random(7))
    firsts = [r.order({"twilio": 0.8, "kannel": 0.2})[0] for _ in range(1000)]
    assert 740 < firsts.count("twilio") < 860


def test_base_shares_come_from_config_and_unlisted_providers_stand_by():
    assert parse_base("", ["twilio", "kannel"]) == {"twilio": 1.0, "kannel": 0.0}
    assert parse_base("kannel=60,twilio=40", ["twilio", "kannel"]) == {"kannel": 60.0, "twilio": 40.0}
    assert parse_base("kannel", ["twilio", "kannel"]) == {"kannel": 1.0, "twilio": 0.0}
    assert parse_base("nexmo=10", ["twilio"]) == {"twilio": 1.0}


async def test_the_split_key_names_the_channel(redis):
    r = router(redis, Clock())
    await r.refresh()
    assert await redis.hget(keys.route_split("sms"), "state") == b"twilio=100,kannel=0"
