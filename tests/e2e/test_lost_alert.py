"""A task whose alert Redis no longer has (lost in the last moment before a
failover) is dropped with a warning: the worker does not crash on it."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway import tasks

pytestmark = pytest.mark.e2e


async def test_a_queued_batch_for_an_alert_redis_lost_is_dropped_not_a_crash(city):
    before = city.stack.log_size()
    tasks.plan_batch.apply_async(("al_lost00000000000", 0, ["r1"]))
    tasks.send_steps.apply_async(("al_lost00000000000", [["r1", 0, 0]]))
    deadline = time.monotonic() + 30
    while True:
        with open(city.stack.worker_log, "rb") as f:
            f.seek(before)
            dropped = f.read().count(b"al_lost00000000000 no longer exists")
        if dropped == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert dropped == 2
    # The `city` fixture then finds no task that raised in the worker's log.
