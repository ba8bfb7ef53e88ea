"""The API hands work to the workers without holding up its event loop:
while the broker is slow to take a task, agencies and providers are still
answered, and every task is published once the broker is back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import orjson
import pytest

from gateway import tasks
from gateway.fallback import rule_for
from gateway.store import connect

from hosts import rabbitmq_env, rabbitmq_server
from stackkit import free_ports

PAUSE_MS = 1000
BROKER_DB = 1
EXTREME = rule_for("Extreme", "Immediate").turn
MODERATE = rule_for("Moderate").turn


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory):
    """A RabbitMQ node of this module's own, on loopback; its AMQP URL."""
    if rabbitmq_server() is None:
        pytest.skip("no rabbitmq-server installed")
    port, dist_port = free_ports(2)
    env = rabbitmq_env(tmp_path_factory.mktemp("rabbitmq"), f"dispatch{os.getpid()}@localhost", port, dist_port)
    node = subprocess.Popen([rabbitmq_server()], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, "RabbitMQ did not start"
                time.sleep(0.2)
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(60)


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
    dispatch.fan_out("warm-up", MODERATE)
    await dispatch.close()
    await broker.delete(*await broker.keys(f"{tasks.Queues.FANOUT}*"))
    dispatch = tasks.Dispatch()

    pauser = connect(redis_url)
    await pauser.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
    paused_at = time.monotonic()
    for aid in ("a1", "a2", "a3"):
        dispatch.fan_out(aid, MODERATE)
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
    queued = await waiting(broker, tasks.Queues.FANOUT)
    assert sorted(m["headers"]["argsrepr"] for m in queued) == ["('a1',)", "('a2',)", "('a3',)"]


async def test_webhook_escalations_gathered_before_stopping_are_published_by_close(broker):
    dispatch = tasks.Dispatch(batch_size=200)
    dispatch.send_steps("a1", [("r1", 1, 0), ("r2", 1, 0)], MODERATE)
    await dispatch.close()
    queued = await waiting(broker, tasks.Queues.STEPS)
    assert len(queued) == 1
    assert "r1" in queued[0]["headers"]["argsrepr"] and "r2" in queued[0]["headers"]["argsrepr"]


async def test_a_timed_out_step_is_taken_before_fan_out_batches_queued_ahead_of_it(broker):
    """A resident whose SMS step timed out waits for no new alert's batches:
    a worker takes every queued step task before the next fan-out batch."""
    dispatch = tasks.Dispatch()
    for aid in ("new1", "new2", "new3"):
        dispatch.fan_out(aid, MODERATE)
    for aid in ("late1", "late2"):
        dispatch.due(aid, ["r1|0|t"], MODERATE)
    await dispatch.close()

    taken = take(5)
    assert [task for task, _ in taken[:2]] == ["gateway.due", "gateway.due"], taken


async def test_an_extreme_alert_is_fanned_out_before_a_moderate_alerts_queued_escalations(broker):
    """An evacuation order waits for no water cut's SMS->voice escalations."""
    dispatch = tasks.Dispatch()
    for aid in ("cut1", "cut2", "cut3"):
        dispatch.due(aid, ["r1|0|t"], MODERATE)
    dispatch.fan_out("evacuate", EXTREME)
    await dispatch.close()

    assert take(4)[0] == ("gateway.fan_out", "('evacuate',)")


async def test_an_extreme_alerts_escalations_are_not_held_up_by_a_moderate_alerts_fan_out(broker):
    """The evacuation's SMS->voice escalations go before a new water cut's batches,
    and before the water cut's own escalations queued earlier."""
    dispatch = tasks.Dispatch()
    dispatch.fan_out("cut-new", MODERATE)
    dispatch.due("cut-old", ["r1|0|t"], MODERATE)
    dispatch.send_steps("evacuate", [("r1", 1, 0)], EXTREME)
    dispatch.due("evacuate", ["r2|0|t"], EXTREME)
    await dispatch.close()

    order = [aid for _, aid in take(4)]
    assert sorted(order[:2]) == ["('evacuate', ['r2|0|t'])", "('evacuate', [['r1', 1, 0]])"], order
    assert order[2:] == ["('cut-old', ['r1|0|t'])", "('cut-new',)"], order


async def test_on_rabbitmq_an_extreme_alerts_work_goes_before_a_moderate_alerts_queued_ahead_of_it(
        rabbitmq, redis_url):
    """RabbitMQ orders each queue by priority (x-max-priority): the evacuation's
    escalation and fan-out each jump the water cut's. It has no order between
    two queues, so each is taken on its own here (docs/design.md)."""
    tasks.configure(rabbitmq, redis_url)
    dispatch = tasks.Dispatch()
    for aid in ("cut1", "cut2", "cut3"):
        dispatch.due(aid, ["r1|0|t"], MODERATE)
        dispatch.fan_out(f"{aid}-new", MODERATE)
    dispatch.due("evacuate", ["r2|0|t"], EXTREME)
    dispatch.fan_out("evacuate-new", EXTREME)
    await dispatch.close()

    assert take(4, (tasks.Queues.STEPS,))[0] == ("gateway.due", "('evacuate', ['r2|0|t'])")
    assert take(4, (tasks.Queues.FANOUT,))[0] == ("gateway.fan_out", "('evacuate-new',)")


async def waiting(broker, queue: str) -> list[dict]:
    """The tasks in `queue`, whatever their priority (kombu keeps a list per priority step)."""
    names = [k for k in await broker.keys(f"{queue}*") if k.split(b"\x06\x16")[0] == queue.encode()]
    return [orjson.loads(m) for name in names for m in await broker.lrange(name, 0, -1)]


def take(count: int, queues: tuple[str, ...] = (tasks.Queues.STEPS, tasks.Queues.FANOUT)) -> list[tuple[str, str]]:
    """(task, its arguments) of the next `count` tasks, in the order a worker
    taking from `queues` (by default the worker's own, gateway/service.py) takes them."""
    taken = []

    def one(body, message):
        taken.append((message.headers["task"], message.headers["argsrepr"]))
        message.ack()

    with tasks.app.connection_for_read() as conn:
        # Declared as the worker declares them (x-max-priority on RabbitMQ).
        declared = [tasks.app.amqp.queues[name] for name in queues]
        with conn.Consumer(declared, callbacks=[one], accept=["json"], prefetch_count=1):
            while len(taken) < count:
                conn.drain_events(timeout=5)
    return taken


async def test_the_pump_can_tell_how_many_step_tasks_wait_for_a_worker(broker):
    dispatch = tasks.Dispatch()
    assert await dispatch.steps_waiting() == 0
    for aid, turn in (("a1", EXTREME), ("a2", MODERATE), ("a3", MODERATE)):
        dispatch.due(aid, ["r1|0|t"], turn)
    dispatch.fan_out("a4", EXTREME)
    assert await dispatch.steps_waiting() == 3
    await dispatch.close()
