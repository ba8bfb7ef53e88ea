"""Pacing keeps every worker together under a provider's rate limit."""

from __future__ import annotations

import asyncio

import pytest

from channels.pacing import Bucket, Pacer
from gateway import keys
from gateway.store import connect


class Clock:
    """Frozen time; sleeps are recorded, not slept."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def pacer(redis, clock: Clock) -> Pacer:
    return Pacer(redis, clock=clock, sleep=clock.sleep)


async def test_a_batch_over_the_account_limit_is_spread_over_seconds_in_one_round_trip(redis):
    clock = Clock()
    p = pacer(redis, clock)
    account = Bucket(keys.pace_bucket("sms", "twilio"), rate_per_s=10)
    delays = sorted(await asyncio.gather(*(p.wait(account) for _ in range(30))))
    assert delays[:10] == [0.0] * 10  # one second's burst goes at once
    assert delays[10] == pytest.approx(0.1, abs=0.002)
    assert delays[-1] == pytest.approx(2.0, abs=0.002)
    assert p.round_trips == 1


async def test_two_workers_share_one_sender_number_limit(redis, redis_url):
    clock = Clock()
    sender = Bucket(keys.pace_bucket("sms", "twilio", "+15005550006"), rate_per_s=5, burst=1)
    first, second = pacer(redis, clock), pacer(connect(redis_url), clock)
    a = await asyncio.gather(*(first.wait(sender) for _ in range(5)))
    b = await asyncio.gather(*(second.wait(sender) for _ in range(5)))
    slots = sorted(a + b)
    # Ten sends, one every 200 ms between them, none sharing a slot.
    assert slots == pytest.approx([i * 0.2 for i in range(10)], abs=0.002)
    await second.redis.aclose()


async def test_the_tighter_of_sender_and_account_limits_wins(redis):
    clock = Clock()
    p = pacer(redis, clock)
    account = Bucket(keys.pace_bucket("voice", "twilio"), rate_per_s=100)
    caller = Bucket(keys.pace_bucket("voice", "twilio", "+15005550006"), rate_per_s=2, burst=1)
    delays = sorted(await asyncio.gather(*(p.wait(account, caller) for _ in range(4))))
    assert delays == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=0.002)


async def test_a_quiet_bucket_allows_a_burst_again(redis):
    clock = Clock()
    p = pacer(redis, clock)
    account = Bucket(keys.pace_bucket("sms", "kannel"), rate_per_s=4)
    await asyncio.gather(*(p.wait(account) for _ in range(8)))
    clock.now += 10
    delays = await asyncio.gather(*(p.wait(account) for _ in range(4)))
    assert delays == [0.0] * 4


async def test_without_redis_sends_go_unpaced():
    clock = Clock()
    p = Pacer(None, clock=clock, sleep=clock.sleep)
    assert await p.wait(Bucket("k", rate_per_s=1)) == 0.0
