"""The API hands work to the workers without holding up its event loop:
while the broker is slow to take a task, agencies and providers are still
answered, and every task is published once the broker is back."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from kombu import Queue

from gateway import tasks
from gateway.store import connect

PAUSE_MS = 1000
BROKER_DB = 1


@pytest.fixture
async def broker(redis_url):
    """The session's real Redis, database 1, as the Celery broker."""
    tasks.configure(redis_url.replace("unix://", "redis+socket://") + f"?virtual_host={BROKER_DB}", redis_url)
    client = connect(f"{redis_url}?db={BROKER_DB}")
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_the_event_loop_keeps_answering_while_the_broker_is_slow_to_take_a_fan_out(broker, redis_url):
    dispatch = tasks.Dispatch()
    # Connect once first, so the pause stalls a publish, not the first connection.
    dispatch.fan_out("warm-up")
    await dispatch.close()
    await broker.delete(tasks.Queues.FANOUT)
    dispatch = tasks.Dispatch()

    pauser = connect(redis_url)
    await pauser.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
    paused_at = time.monotonic()
    for aid in ("a1", "a2", "a3"):
        dispatch.fan_out(aid)
    # What an agency's next request needs from the loop: a turn, soon.
    began = time.monotonic()
    for _ in range(10):
        await asyncio.sleep(0.01)
    answered_s = time.monotonic() - began
    await dispatch.close()
    published_s = time.monotonic() - paused_at
    await pauser.aclose()

    assert answered_s < PAUSE_MS / 1000 / 2, answered_s
    # The publishes really waited for the broker: the pause was what they met.
    assert published_s >= PAUSE_MS / 1000 * 0.8, published_s
    queued = [orjson.loads(m) for m in await broker.lrange(tasks.Queues.FANOUT, 0, -1)]
    assert sorted(m["headers"]["argsrepr"] for m in queued) == ["('a1',)", "('a2',)", "('a3',)"]


async def test_webhook_escalations_gathered_before_stopping_are_published_by_close(broker):
    dispatch = tasks.Dispatch(batch_size=200)
    dispatch.send_steps("a1", [("r1", 1, 0), ("r2", 1, 0)])
    await dispatch.close()
    queued = [orjson.loads(m) for m in await broker.lrange(tasks.Queues.STEPS, 0, -1)]
    assert len(queued) == 1
    assert "r1" in queued[0]["headers"]["argsrepr"] and "r2" in queued[0]["headers"]["argsrepr"]


async def test_a_timed_out_step_is_taken_before_fan_out_batches_queued_ahead_of_it(broker):
    """A resident whose SMS step timed out waits for no new alert's batches:
    a worker takes every queued step task before the next fan-out batch."""
    for aid in ("new1", "new2", "new3"):
        tasks.fan_out.apply_async((aid,))
    for aid in ("late1", "late2"):
        tasks.due.apply_async((aid, ["r1|0|t"]))
    taken = []

    def take(body, message):
        taken.append(message.headers["task"])
        message.ack()

    with tasks.app.connection_for_read() as conn:
        # The worker's own order (gateway/service.py): steps, then fan-out.
        queues = [Queue(tasks.Queues.STEPS), Queue(tasks.Queues.FANOUT)]
        with conn.Consumer(queues, callbacks=[take], accept=["json"], prefetch_count=1):
            while len(taken) < 3:
                conn.drain_events(timeout=5)

    assert taken[:2] == ["gateway.due", "gateway.due"], taken


async def test_the_pump_can_tell_how_many_step_tasks_wait_for_a_worker(broker):
    dispatch = tasks.Dispatch()
    assert await dispatch.steps_waiting() == 0
    for aid in ("a1", "a2", "a3"):
        dispatch.due(aid, ["r1|0|t"])
    dispatch.fan_out("a4")
    assert await dispatch.steps_waiting() == 3
    await dispatch.close()
