"""Pacing keeps every worker together under a provider's rate limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from channels.pacing import Bucket, Pacer
from gateway import keys
from gateway.store import connect


class Sleeps:
    """Sleeps are recorded, not slept."""

    def __init__(self):
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def pacer(redis) -> Pacer:
    return Pacer(redis, sleep=Sleeps())


async def test_a_batch_over_the_account_limit_is_spread_over_seconds_in_one_round_trip(redis):
    p = pacer(redis)
    account = Bucket(keys.pace_bucket("sms", "twilio"), rate_per_s=10)
    delays = sorted(await asyncio.gather(*(p.wait(account) for _ in range(30))))
    assert delays[:10] == [0.0] * 10  # one second's burst goes at once
    assert delays[10] == pytest.approx(0.1, abs=0.002)
    assert delays[-1] == pytest.approx(2.0, abs=0.002)
    assert p.round_trips == 1


async def test_two_workers_share_one_sender_number_limit(redis, redis_url):
    sender = Bucket(keys.pace_bucket("sms", "twilio", "+15005550006"), rate_per_s=5, burst=1)
    first, second = pacer(redis), pacer(connect(redis_url))
    a = await asyncio.gather(*(first.wait(sender) for _ in range(5)))
    b = await asyncio.gather(*(second.wait(sender) for _ in range(5)))
    # Ten sends, one every 200 ms between them (less the moments between the
    # two workers' round trips), none sharing a slot.
    assert sorted(a) == pytest.approx([i * 0.2 for i in range(5)], abs=0.002)
    assert sorted(b) == pytest.approx([i * 0.2 for i in range(5, 10)], abs=0.05)
    await second.redis.aclose()


async def test_a_worker_whose_clock_is_30_s_behind_waits_no_longer_than_the_others(redis, redis_url, monkeypatch):
    # Slots were once judged by the caller's clock: a worker 30 s behind found
    # the bucket 30 s ahead of it and slept ~29 s before every send, past the
    # claim lease, so another worker sent the same attempt again.
    account = Bucket(keys.pace_bucket("voice", "twilio"), rate_per_s=1000)
    await asyncio.gather(*(pacer(redis).wait(account) for _ in range(10)))
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() - 30)
    behind = pacer(connect(redis_url))
    waited = await asyncio.gather(*(behind.wait(account) for _ in range(10)))
    assert max(waited) < 1.0
    await behind.redis.aclose()


async def test_the_tighter_of_sender_and_account_limits_wins(redis):
    p = pacer(redis)
    account = Bucket(keys.pace_bucket("voice", "twilio"), rate_per_s=100)
    caller = Bucket(keys.pace_bucket("voice", "twilio", "+15005550006"), rate_per_s=2, burst=1)
    delays = sorted(await asyncio.gather(*(p.wait(account, caller) for _ in range(4))))
    assert delays == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=0.002)


async def test_a_quiet_bucket_allows_a_burst_again(redis):
    p = pacer(redis)
    account = Bucket(keys.pace_bucket("sms", "kannel"), rate_per_s=40, burst=4)
    busy = await asyncio.gather(*(p.wait(account) for _ in range(8)))
    assert max(busy) == pytest.approx(0.1, abs=0.002)  # the bucket is full for 200 ms
    await asyncio.sleep(0.3)
    delays = await asyncio.gather(*(p.wait(account) for _ in range(4)))
    assert delays == [0.0] * 4


async def test_without_redis_sends_go_unpaced():
    p = Pacer(None)
    assert await p.wait(Bucket("k", rate_per_s=1)) == 0.0
