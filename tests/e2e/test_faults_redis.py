"""Redis killed with SIGKILL mid fan-out and started again from its AOF, or
unreachable for a while: every resident still ends in exactly one terminal
state, and /metrics says Redis is down while it is.

Workers, pump and API reconnect by themselves. Before, a batch that found
Redis down (refused, or still loading its AOF) failed, and Celery acknowledges
a failed task like a finished one: here 900 of 2,000 residents were never
planned and the alert never ended. Now such a task runs again a moment later
(gateway/tasks.py, REDIS_DOWN).
"""

from __future__ import annotations

import asyncio

import pytest

from fault_drill import Run, redis_sigkill_restart, scrape
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


async def test_redis_unreachable_mid_fanout_shows_in_metrics_and_loses_no_resident(tmp_path):
    seen = []

    async def unreachable(run: Run) -> None:
        run.s.pause("redis")
        await asyncio.sleep(1)
        seen.append(await scrape(run.http, run.s.api))
        await asyncio.sleep(UNREACHABLE_S - 1)
        run.s.resume("redis")

    with ProcessStack(tmp_path) as stack:
        run = await Run(stack, RESIDENTS)(unreachable)
    print(f"\n{RESIDENTS} residents, Redis unreachable {UNREACHABLE_S} s: /metrics said {seen}; "
          + "; ".join(run.notes[:2]))
    assert "redis_up=0" in seen[0] and "queue_depth" in seen[0]
    assert run.lost == 0
    assert run.contacted_again == 0
    assert run.duplicated <= run.in_flight
