"""Celery tasks. Each carries a batch of deliveries, never one message, and
takes ids, never objects.  Every task is idempotent: run twice, it sends
nothing twice (the claim in transitions.lua sees to that), so `acks_late`
with `task_reject_on_worker_lost` loses nothing when a worker is killed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import aiohttp
import uvloop
from celery import Celery, signals
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import keys
from .agencies import get_agency
from .alerts import resolve_audience
from .config import Settings
from .engine import Engine, UnknownAlert
from .fallback import TURNS, turn_of
from .lifecycle import Lifecycle, activate, plan_and_start
from .store import SENTINEL_SCHEME, SentinelUrl, connect
from .transitions import text

log = logging.getLogger("gateway.tasks")


def batches(items: list, size: int) -> list[list]:
    """`items` in tasks as near `size` as their count allows (a half to one and
    a half of it): a task costs the workers a few ms whatever it carries, so
    250 due timers go as one task, not as 200 and a straggler of 50."""
    if not items:
        return []
    count = max(1, round(len(items) / size))
    step = -(-len(items) // count)
    return [items[i:i + step] for i in range(0, len(items), step)]


class Queues:
    # Escalations and retries jump the fan-out queue of their turn: a resident
    # already waiting on a timed-out step should not wait behind a new alert
    # of the same severity.  Workers consume them in this order (QUEUE_ORDER).
    STEPS = "steps"
    FANOUT = "fanout"


# The order in which workers take queued work: the alert's turn first (the
# severity table, gateway/fallback.py: an Extreme alert's fan-out before a
# Moderate alert's backlog of escalations), then steps before fan-out.  Every
# task goes out with its alert's turn as the message priority.
#
# Redis: kombu keeps one list per queue and priority (priority_steps, one per
# turn) and a worker's BRPOP names them priority by priority, each in the
# queue order of `-Q`; `queue_order_strategy: priority` keeps that order (by
# default it rotates the queues, and a worker took a fan-out batch between
# every two escalation batches).  A lower number goes first.
# RabbitMQ: each queue is an x-max-priority queue and a higher number goes
# first, so an urgent task jumps the lesser ones queued ahead of it in its
# queue; the broker has no order between two queues, and a worker is handed
# work from both (docs/design.md, "Which work goes first").
QUEUE_ORDER = {"queue_order_strategy": "priority", "priority_steps": list(range(TURNS))}
LAST_TURN = TURNS - 1
# Set by `configure` for the broker in use.
_higher_first = False


def priority(turn: int) -> int:
    """The message priority of work of `turn` on the broker in use."""
    return LAST_TURN - turn if _higher_first else turn


app = Celery("gateway")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=Queues.FANOUT,
    # RabbitMQ declares the queues with x-max-priority; Redis ignores it.
    task_queue_max_priority=LAST_TURN,
    task_routes={
        "gateway.send_steps": {"queue": Queues.STEPS},
        "gateway.due": {"queue": Queues.STEPS},
        "gateway.close_open": {"queue": Queues.STEPS},
    },
    # A killed worker's batch comes back after this; batches take seconds.
    broker_transport_options={"visibility_timeout": 60, **QUEUE_ORDER},
    broker_connection_retry_on_startup=True,
    # A task published while the broker fails over (a Sentinel election takes
    # seconds) waits for the new primary instead of being dropped.
    task_publish_retry_policy={"max_retries": 60, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_ignore_result=True,
)


# A batch that finds Redis down (restarting, loading its AOF, unreachable) runs
# again a moment later instead of failing: a failed task is acknowledged all
# the same, and its residents would never be planned or sent to.  Up to about
# 15 minutes: the backoff is capped at REDIS_RETRY_MAX_S.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
REDIS_RETRY_MAX_S = 8
REDIS_RETRIES = 120


def task(name: str):
    """A gateway task: idempotent, so run again whenever Redis was not there."""
    return app.task(name=name, autoretry_for=REDIS_DOWN, retry_backoff=1, retry_backoff_max=REDIS_RETRY_MAX_S,
                    retry_jitter=True, max_retries=REDIS_RETRIES)


def configure(broker_url: str, redis_url: str, visibility_timeout_s: int = 60) -> Celery:
    global _higher_first
    _higher_first = broker_url.startswith(("amqp", "pyamqp"))
    options: dict = {"visibility_timeout": visibility_timeout_s, **QUEUE_ORDER}
    if broker_url.startswith(SENTINEL_SCHEME):
        broker_url, sentinel_options = SentinelUrl.parse(broker_url).broker()
        options.update(sentinel_options)
    app.conf.broker_url = broker_url
    app.conf.gateway_redis_url = redis_url
    app.conf.broker_transport_options = options
    # A task published without its alert's turn (none should be) goes last.
    app.conf.task_default_priority = priority(LAST_TURN)
    forget_broker()
    return app


def forget_broker() -> None:
    """Celery keeps one broker connection and producer pool per process, opened
    on first use: a process configured again must publish to its new broker."""
    app._pool = None
    app.amqp._producer_pool = None


class Runtime:
    """What one worker process keeps between tasks: a loop, Redis, the engine."""

    def __init__(self, settings: Settings, redis_url: str):
        self.loop = uvloop.new_event_loop()
        self.settings = settings
        self.redis = connect(redis_url)
        self.engine = Engine(settings, self.redis)

        async def open_():
            self.http = aiohttp.ClientSession()
            self.engine.open_channels(self.http)

        self.loop.run_until_complete(open_())

    def run(self, coro):
        """The task's work; None when its alert no longer exists. That happens only
        when Redis lost it (the last moment before a failover, or a database
        emptied under a queued task): there is nobody left to send to, and a task
        that raised would only be logged as a crash."""
        try:
            return self.loop.run_until_complete(coro)
        except UnknownAlert as e:
            log.warning("alert %s no longer exists: its queued task is dropped", e)
            return None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(Settings.from_env(), app.conf.gateway_redis_url)
        # Modules, channels and templates, loaded by now, live as long as the
        # process: out of the collector's reach, or every full collection walks
        # them again (a quarter of a worker's CPU went to that).
        gc.freeze()
    return _runtime


@signals.worker_process_init.connect
def _fresh_runtime(**_):
    # A forked child must not share its parent's loop or sockets.
    global _runtime
    _runtime = None


@task("gateway.fan_out")
def fan_out(aid: str) -> None:
    rt = runtime()
    rt.run(_fan_out(rt, aid))


async def _fan_out(rt: Runtime, aid: str) -> None:
    r = rt.redis
    meta = await r.hmget(keys.alert(aid), "status", "fanned", "agency")
    if meta[0] is None or text(meta[0]) == "cancelled" or meta[1]:
        return
    view = await rt.engine.alert(aid)
    drill = view.doc.get("status", "Actual") != "Actual"
    agency = await get_agency(r, text(meta[2])) if meta[2] else None
    rids = await resolve_audience(r, view.doc["audience"], drill=drill, within=agency.area() if agency else None)
    if not await activate(r, aid, len(rids)):
        return  # cancelled (or expired) while the audience was being resolved
    size = rt.settings.batch_size
    turn = priority(turn_of(view.doc))
    for start in range(0, len(rids), size):
        plan_batch.apply_async((aid, start, rids[start:start + size]), priority=turn)
    # Not part of `activate`: true only once the broker holds every batch, and only the pump reads it.
    await r.hset(keys.alert(aid), "fanned", 1)


@task("gateway.plan_batch")
def plan_batch(aid: str, first_seq: int, rids: list[str]) -> None:
    rt = runtime()
    rt.run(plan_and_start(rt.engine, aid, first_seq, rids))


UPDATE_WAIT_S = 1.0
UPDATE_TRIES = 120


@task("gateway.apply_update")
def apply_update(aid: str, version: int, tries: int = 0) -> None:
    """After an alert's update: plan whom it adds, stop whom it drops, start the round for the confirmed."""
    rt = runtime()
    work = rt.run(Lifecycle(rt.redis).apply_update(rt.engine, aid, version))
    if work is None:
        # The first fan-out is still planning; a Celery countdown this short is safe.
        if tries < UPDATE_TRIES:
            apply_update.apply_async((aid, version, tries + 1), countdown=UPDATE_WAIT_S)
        else:
            log.error("update %s of %s gave up waiting for the fan-out", version, aid)
        return
    view = rt.run(rt.engine.alert(aid))
    if view is None:
        return
    # The update may have changed the severity: its work goes in the new turn.
    turn = priority(turn_of(view.doc))
    # Engine.alert checks the version, so the added residents get the new words at once.
    for first_seq, rids in work.added:
        plan_batch.apply_async((aid, first_seq, rids), priority=turn)
    size = rt.settings.batch_size
    for start in range(0, len(work.round_items), size):
        send_steps.apply_async((work.round_id, [[rid, 0, 0] for rid in work.round_items[start:start + size]]),
                               priority=turn)


@task("gateway.send_steps")
def send_steps(aid: str, items: list[list]) -> None:
    rt = runtime()
    rt.run(rt.engine.send(aid, [(rid, int(k), int(n)) for rid, k, n in items]))


@task("gateway.due")
def due(aid: str, members: list[str]) -> None:
    rt = runtime()
    rt.run(rt.engine.due(aid, members))


@task("gateway.close_open")
def close_open(aid: str, state: str) -> None:
    rt = runtime()
    rt.run(rt.engine.close_open(aid, state))


class Dispatch:
    """How processes without a worker (api, pump) hand work to the workers.

    Escalations found by webhooks arrive one at a time; they are gathered for
    a few milliseconds so workers get batches, not single messages.

    Publishing is a blocking round trip to the broker (kombu is synchronous):
    one thread of its own does it, in order, so the event loop goes on
    answering agencies and providers meanwhile.
    """

    FLUSH_S = 0.05

    def __init__(self, batch_size: int = 200):
        self.batch_size = batch_size
        self._pending: dict[str, list[list]] = {}
        self._turns: dict[str, int] = {}
        self._flusher: asyncio.TimerHandle | None = None
        self._publisher = ThreadPoolExecutor(1, thread_name_prefix="publish")

    def _publish(self, task, args: tuple, turn: int) -> None:
        self._publisher.submit(task.apply_async, args, priority=priority(turn)).add_done_callback(_log_failure)

    def fan_out(self, aid: str, turn: int) -> None:
        # The alert is stored by now, and the pump starts again a fan-out that
        # never began (STUCK_PLANNING_MS), so the 202 need not wait for the broker.
        self._publish(fan_out, (aid,), turn)

    def due(self, aid: str, members: list[str], turn: int) -> None:
        self._publish(due, (aid, members), turn)

    def close_open(self, aid: str, state: str) -> None:
        # Ending an alert's open deliveries (cancelled, expired) goes first
        # whatever its severity: it stops sends nobody wants any more.
        self._publish(close_open, (aid, state), 0)

    def apply_update(self, aid: str, version: int, turn: int) -> None:
        self._publish(apply_update, (aid, version), turn)

    async def steps_waiting(self) -> int:
        """Step tasks published (all handed over so far) and not yet taken by a worker."""
        return await asyncio.get_running_loop().run_in_executor(self._publisher, _waiting, Queues.STEPS)

    def send_steps(self, aid: str, items, turn: int) -> None:
        self._turns[aid] = turn
        pending = self._pending.setdefault(aid, [])
        pending.extend([rid, k, n] for rid, k, n in items)
        if len(pending) >= self.batch_size:
            self._flush_alert(aid)
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)

    def flush(self) -> None:
        self._flusher = None
        for aid in list(self._pending):
            self._flush_alert(aid)

    async def close(self) -> None:
        """Hands over what is gathered and waits until everything is published."""
        if self._flusher is not None:
            self._flusher.cancel()
        self.flush()
        await asyncio.get_running_loop().run_in_executor(None, self._publisher.shutdown)

    def _flush_alert(self, aid: str) -> None:
        turn = self._turns.pop(aid)
        for batch in batches(self._pending.pop(aid, []), self.batch_size):
            self._publish(send_steps, (aid, batch), turn)


def _waiting(queue: str) -> int:
    with app.pool.acquire(block=True) as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except conn.channel_errors:
            return 0  # never declared, or (Redis) emptied: nothing waits


def _log_failure(done: Future) -> None:
    # Nothing is lost: the pump gives back timers (a next step has one too, transitions.lua)
    # and restarts fan-outs not handed over.
    if done.exception() is not None:
        log.error("could not publish a task", exc_info=done.exception())
