"""Starting the gateway's processes: api (+ pump), workers, or all on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import aiohttp
import uvloop
from aiohttp import web

from channels import discover

from . import shared_keys, tasks
from .api.app import make_app
from .config import Settings
from .egress import Egress
from .embedded_redis import EmbeddedRedis, resolve_urls
from .engine import Engine
from .pump import Pump
from .store import connect

log = logging.getLogger("gateway")
# How much lower than the API, the pump and Redis the workers run.
WORKER_NICENESS = 10


def run(coro):
    """Run a long-lived gateway process on uvloop: the loop's own overhead was
    a large share of the CPU per message on plain asyncio."""
    return uvloop.run(coro)


@dataclass
class Urls:
    redis: str
    broker: str
    embedded: EmbeddedRedis | None


def urls(settings: Settings) -> Urls:
    return Urls(*resolve_urls(settings))


@contextlib.asynccontextmanager
async def api_server(settings: Settings, u: Urls, *, with_pump: bool = True):
    """The API (and the pump) listening; yields the aiohttp app."""
    tasks.configure(u.broker, u.redis, settings.broker_visibility_timeout_s)
    redis = connect(u.redis, 128)
    try:
        await shared_keys.check(redis, settings)
    except shared_keys.KeyMismatch:
        await redis.aclose()
        raise
    dispatch = tasks.Dispatch(settings.batch_size)
    engine = Engine(settings, redis, follow_up=dispatch.send_steps)
    http = aiohttp.ClientSession()
    engine.open_channels(http)
    app = make_app(settings, redis, engine, dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port, backlog=1024).start()
    stop = asyncio.Event()
    pump_task = None
    # The pump has connections of its own: in a storm of webhooks at 10,000 residents
    # their flushes held the whole shared pool for 30 s and more, and timers waited behind them.
    pump_redis = connect(u.redis, 16) if with_pump else None
    if pump_redis is not None:
        pump = Pump(pump_redis, dispatch, Egress(settings.callback_networks), batch_size=settings.batch_size)
        pump_task = asyncio.create_task(pump.run(stop))
    # Channels' own background work (the mail batcher, print-house answers).
    channel_tasks = [asyncio.create_task(channel.run(stop)) for channel in engine.channels.values()]
    try:
        yield app
    finally:
        stop.set()
        if pump_task:
            await pump_task
        await asyncio.gather(*channel_tasks, return_exceptions=True)
        # Requests still being answered may hand over work: stop them first.
        await runner.cleanup()
        await dispatch.close()
        await engine.close()
        await http.close()
        await redis.aclose()
        if pump_redis is not None:
            await pump_redis.aclose()


async def run_until_signalled(settings: Settings, u: Urls, *, with_pump: bool = True) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with api_server(settings, u, with_pump=with_pump):
        log.info("gateway api on http://%s:%s", settings.api_host, settings.api_port)
        # What is loaded by now lives as long as the process: keep the collector off it.
        gc.freeze()
        await stop.wait()


async def run_pump(settings: Settings, u: Urls) -> None:
    tasks.configure(u.broker, u.redis, settings.broker_visibility_timeout_s)
    redis = connect(u.redis)
    await shared_keys.check(redis, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gc.freeze()
    dispatch = tasks.Dispatch(settings.batch_size)
    try:
        await Pump(redis, dispatch, Egress(settings.callback_networks), batch_size=settings.batch_size).run(stop)
    finally:
        await dispatch.close()


def run_worker(settings: Settings, u: Urls, concurrency: int | None = None, loglevel: str = "WARNING") -> None:
    tasks.configure(u.broker, u.redis, settings.broker_visibility_timeout_s)
    run(_check_keys(settings, u.redis))
    # Batches can wait a moment; an agency posting an alert, Redis and the
    # providers' callbacks should not (all on one machine with `gateway run`).
    os.nice(WORKER_NICENESS)
    # Channel modules loaded once, in the pool's parent, rather than in every child it forks.
    discover()
    tasks.app.worker_main([
        "worker", "-Q", f"{tasks.Queues.STEPS},{tasks.Queues.FANOUT}", "-c", str(concurrency or settings.worker_concurrency),
        "-P", "prefork", "--loglevel", loglevel, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"gateway-{os.getpid()}@%h",
    ])


async def _check_keys(settings: Settings, redis_url: str) -> None:
    redis = connect(redis_url)
    try:
        await shared_keys.check(redis, settings)
    finally:
        await redis.aclose()


def spawn_worker(settings: Settings, u: Urls, concurrency: int | None = None, **popen) -> subprocess.Popen:
    """A worker in its own process group, so a kill reaches its pool too."""
    env = {**os.environ, **settings.env(), "GATEWAY_REDIS_URL": u.redis, "GATEWAY_BROKER_URL": u.broker}
    args = [sys.executable, "-m", "gateway", "worker"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    return subprocess.Popen(args, env=env, start_new_session=True, **popen)


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
