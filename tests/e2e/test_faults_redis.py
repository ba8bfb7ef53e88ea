"""Redis killed with SIGKILL mid fan-out and started again from its AOF, or
unreachable for a while (stopped, or its host off the network): every
resident still ends in exactly one terminal state, and /metrics says Redis
is down while it is.

Workers, pump and API reconnect by themselves. Before, a batch that found
Redis down (refused, or still loading its AOF) failed, and Celery acknowledges
a failed task like a finished one: here 900 of 2,000 residents were never
planned and the alert never ended. Now such a task runs again a moment later
(gateway/tasks.py, REDIS_DOWN).
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from gateway import keys
from gateway.store import connect

from fault_drill import REDIS_UNREACHABLE_S, Run, redis_link_down, redis_sigkill_restart, scrape
from hosts import unavailable
from process_stack import ProcessStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESIDENTS = 2000
UNREACHABLE_S = 10


async def test_redis_killed_and_restarted_from_its_aof_mid_fanout_loses_no_resident(tmp_path):
    with ProcessStack(tmp_path) as stack:
        run = await Run(stack, RESIDENTS)(redis_sigkill_restart)
    print(f"\n{RESIDENTS} residents, Redis SIGKILL and restart: " + "; ".join(run.notes[:2]))
    assert run.lost == 0
    assert run.contacted_again == 0
    assert run.duplicated <= run.in_flight


async def test_redis_unreachable_mid_fanout_shows_in_metrics_and_the_console_and_loses_no_resident(tmp_path):
    seen, pages = [], {}

    async def get(http, path, **kw) -> tuple[int, str, str]:
        async with http.get(path, timeout=aiohttp.ClientTimeout(total=20), **kw) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()

    async def unreachable(run: Run) -> None:
        run.s.pause("redis")
        await asyncio.sleep(1)
        began = time.monotonic()
        metrics, pages["console"], pages["api"] = await asyncio.gather(
            scrape(run.http, run.s.api), get(run.browser, f"{run.s.api}/ops/alerts"),
            get(run.http, f"{run.s.api}/v1/alerts/{run.aid}", headers=run.auth))
        seen.append(metrics)
        await asyncio.sleep(max(0.0, UNREACHABLE_S - 1 - (time.monotonic() - began)))
        run.s.resume("redis")
        # The console comes back by itself once Redis answers.
        for _ in range(20):
            pages["after"] = await get(run.browser, f"{run.s.api}/ops/alerts")
            if pages["after"][0] == 200:
                break
            await asyncio.sleep(1)

    with ProcessStack(tmp_path) as stack:
        run = await Run(stack, RESIDENTS)(unreachable)
    print(f"\n{RESIDENTS} residents, Redis unreachable {UNREACHABLE_S} s: /metrics said {seen}; "
          + "; ".join(run.notes[:2]))
    assert "redis_up=0" in seen[0] and "queue_depth" in seen[0]
    # The operator is told what is wrong, with what the broker still says, and the page tries again by itself.
    status, _, page = pages["console"]
    assert status == 503 and "(Redis) is not answering" in page and "Redis NOT answering" in page, page
    assert re.search(r"\d+ escalations, \d+ fan-out batches", page), page
    # An agency is told to try again, not that the gateway failed.
    status, kind, body = pages["api"]
    assert status == 503 and kind == "application/problem+json" and "Redis" in body, body
    status, _, page = pages["after"]
    assert status == 200 and "Redis answering" in page
    assert run.lost == 0
    assert run.contacted_again == 0
    assert run.duplicated <= run.in_flight


@pytest.mark.skipif(bool(unavailable()), reason=f"Redis's own host needs network namespaces: {unavailable()}")
async def test_redis_cut_off_the_network_mid_fanout_loses_no_resident_and_every_process_carries_on(tmp_path):
    # Unlike a SIGSTOP, a link down loses what is sent: connections hang and new
    # ones time out, so each process must give up on them (gateway/store.py,
    # STORE_TIMEOUT_S) and connect again once the link is back.
    with ProcessStack(tmp_path, redis_apart=True) as stack:
        run = await Run(stack, RESIDENTS)(redis_link_down)
        called_after_text = await _called_after_their_text_confirmed(stack, run)
    print(f"\n{RESIDENTS} residents, Redis's link down {REDIS_UNREACHABLE_S} s: " + "; ".join(run.notes[:3]))
    assert run.lost == 0
    assert run.duplicated <= run.in_flight
    # A text in flight at the fault whose outcome could not be written is sent
    # again (its claim lease ran out meanwhile), at times after its receipt's
    # time: a repeat of the same step, within what was in flight. No later step:
    assert run.contacted_again <= run.in_flight
    assert called_after_text == 0
    assert run.watch.recovery_s < 60


async def _called_after_their_text_confirmed(stack: ProcessStack, run: Run) -> int:
    """Residents whose text confirmed them and who were called more than a second later."""
    async with aiohttp.ClientSession() as http:
        calls = [r for r in await stack.simulator_records(http) if r["channel"] == "voice"]
    redis = connect(stack.redis_url)
    try:
        pipe = redis.pipeline(transaction=False)
        for r in calls:
            pipe.hmget(keys.delivery(run.aid, r["resident"]), "y", "e")
        ends = await pipe.execute()
    finally:
        await redis.aclose()
    return len({r["resident"] for r, (by, at) in zip(calls, ends)
                if by == b"sms:delivered" and r["created_at"] > int(at) / 1000 + 1})
