"""The provider simulator as one aiohttp application.

`start(config)` serves Twilio's REST API (and the push / print-house endpoints
when those modules are present) plus a small control API for tests and drills:

    GET  /_sim/faults              the faults in force
    PUT  /_sim/faults              replace them (see simulator.faults)
    POST /_sim/behaviour           add or replace residents (JSON object, list or NDJSON)
    GET  /_sim/records?resident=   what residents received (also ref=, channel=, limit=)
    GET  /_sim/stats               requests (also by sending address), callbacks, duplicates per resident
    GET  /_sim/requests?path=      the last API requests as sent (form fields)
    POST /_sim/reset               forget everything that happened; the city stays

Every delay the simulator plays out (ringing, delivery, replies, callback
back-off) is multiplied by `time_scale`, so tests run a city at 0.01.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import random
import socket
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine

import aiohttp
import orjson
from aiohttp import web

from simulator.behaviour import Behaviour
from simulator.callbacks import Callbacks
from simulator.faults import Faults
from simulator.records import Records
from simulator.twilio import TwilioAPI

log = logging.getLogger("simulator")


def _optional(name: str) -> Any:
    """A provider module written beside this one, or None while it does not exist."""
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    # 0 picks a free port; `start` returns the one it got.
    port: int = 8099
    account_sid: str = "AC" + "0" * 31 + "1"
    auth_token: str = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"
    gateway_url: str = "http://127.0.0.1:8080"
    # None: derived from gateway_url.
    inbound_sms_url: str | None = None
    push_ack_url: str | None = None
    time_scale: float = 1.0
    seed: int | None = None
    behaviour_file: str | None = None
    faults_file: str | None = None
    # The sender a Messaging Service picks (Twilio's magic test number).
    messaging_number: str = "+15005550006"
    callback_tries: int = 4
    callback_backoff_s: float = 1.0
    # Twilio waits 15 s for a webhook answer.
    callback_timeout_s: float = 15.0
    http_connections: int = 1000
    request_log_size: int = 1000
    # The print house's drop box (inbox/, outbox/, done/); None: no print house.
    printhouse_dir: str | None = None
    # The post is slow (an hour or more); demos may run the print house faster
    # than the rest of the city. None: `time_scale`.
    printhouse_time_scale: float | None = None
    # The FCM service-account JSON the push endpoints issue tokens for;
    # None: a fresh one in a temporary directory.
    fcm_service_account: str | None = None

    def __post_init__(self) -> None:
        self.gateway_url = self.gateway_url.rstrip("/")
        if self.inbound_sms_url is None:
            self.inbound_sms_url = f"{self.gateway_url}/hooks/twilio/sms/inbound"
        if self.push_ack_url is None:
            self.push_ack_url = f"{self.gateway_url}/hooks/push/ack"


class Simulator:
    """The state every simulated provider shares; one per application."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.behaviour = Behaviour.load(config.behaviour_file) if config.behaviour_file else Behaviour()
        self._initial_faults: dict[str, Any] = {}
        if config.faults_file:
            with open(config.faults_file, "rb") as f:
                self._initial_faults = orjson.loads(f.read())
        self.faults = Faults(self.rng, self._initial_faults)
        self.records = Records()
        self.stats: Counter[str] = Counter()
        self.requests: deque[dict[str, Any]] = deque(maxlen=config.request_log_size)
        # Opened on startup: a ClientSession must belong to the running loop.
        self.http: aiohttp.ClientSession | None = None
        self.callbacks = Callbacks(self)
        self.twilio = TwilioAPI(self)
        self.base_url = f"http://{config.host}:{config.port}"
        self._tasks: set[asyncio.Task[Any]] = set()
        # What runs for the simulator's whole life (the print house's inbox): started again after a reset.
        self._services: list[Callable[[], Coroutine[Any, Any, Any]]] = []
        # Timers from before a reset see a newer epoch and do nothing.
        self._epoch = 0

    def scaled(self, seconds: float) -> float:
        return seconds * self.config.time_scale

    def new_sid(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(128):032x}"

    def later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> None:
        """Runs fn(*args) after `seconds` of simulated time."""
        asyncio.get_running_loop().call_later(self.scaled(seconds), self._fire, self._epoch, fn, args)

    def _fire(self, epoch: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if epoch == self._epoch:
            fn(*args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def serve(self, service: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Runs `service()` until the simulator closes, across resets."""
        self._services.append(service)
        self.spawn(service())

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats["errors"] += 1
            log.error("simulator task failed", exc_info=task.exception())

    def log_request(self, request: web.Request, fields: Any) -> None:
        """Keeps what the gateway sent, so tests can check it against the provider's spec."""
        pairs = [[k, v if isinstance(v, str) else str(v)] for k, v in fields.items()] if hasattr(fields, "items") else fields
        self.requests.append({"at": time.time(), "method": request.method, "path": request.path, "fields": pairs})

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.http_connections)
        self.http = aiohttp.ClientSession(connector=connector)

    async def _cancel_all(self) -> None:
        self._epoch += 1
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self._cancel_all()
        if self.http is not None:
            await self.http.close()

    async def reset(self) -> None:
        await self._cancel_all()
        self.records.clear()
        self.stats.clear()
        self.requests.clear()
        self.twilio.clear()
        self.callbacks.clear()
        self.faults.set(self._initial_faults)
        for service in self._services:
            self.spawn(service())


SIM = web.AppKey("simulator", Simulator)


@web.middleware
async def _count_requests(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    resource = request.match_info.route.resource
    name = resource.canonical if resource is not None else "unmatched"
    if not name.startswith("/_sim"):
        stats = request.app[SIM].stats
        stats[f"requests.{request.method} {name}"] += 1
        # Per sending host: shows which gateway machines did the work (tests/e2e/test_multihost.py).
        stats[f"peers.{request.remote}"] += 1
    return await handler(request)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _bad(message: str) -> web.Response:
    return _json({"error": message}, 400)


async def get_faults(request: web.Request) -> web.Response:
    return _json(request.app[SIM].faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        sim.faults.set(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        return _bad(str(exc))
    return _json(sim.faults.to_json())


async def post_behaviour(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    raw = await request.read()
    try:
        try:
            parsed = orjson.loads(raw)
            records = parsed if isinstance(parsed, list) else [parsed]
        except orjson.JSONDecodeError:
            records = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        added = sim.behaviour.add_many(records)
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        return _bad(str(exc))
    return _json({"added": added, "residents": len(sim.behaviour)})


async def get_records(request: web.Request) -> web.Response:
    sim, query = request.app[SIM], request.query
    if "ref" in query:
        entry = sim.records.get(query["ref"])
        entries = [entry] if entry else []
    elif "resident" in query:
        entries = sim.records.for_resident(query["resident"])
    else:
        entries = list(sim.records)
    if "channel" in query:
        entries = [e for e in entries if e["channel"] == query["channel"]]
    limit = int(query.get("limit", 1000))
    return _json({"count": len(entries), "records": entries[:limit]})


async def get_stats(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    grouped: dict[str, dict[str, int]] = {}
    for key, value in sim.stats.items():
        group, _, name = key.partition(".")
        grouped.setdefault(group, {})[name or group] = value
    return _json(
        {
            **grouped,
            "records": sim.records.summary(),
            "duplicates": sim.records.duplicates,
            "lost_callbacks": len(sim.records.lost_callbacks),
            "residents": len(sim.behaviour),
        }
    )


async def get_requests(request: web.Request) -> web.Response:
    sim, query = request.app[SIM], request.query
    entries = [r for r in sim.requests if "path" not in query or r["path"].endswith(query["path"])]
    return _json({"requests": entries[-int(query.get("limit", 1000)) :]})


async def post_reset(request: web.Request) -> web.Response:
    await request.app[SIM].reset()
    return _json({"reset": True})


CONTROL_ROUTES = [
    web.get("/_sim/faults", get_faults),
    web.put("/_sim/faults", put_faults),
    web.post("/_sim/behaviour", post_behaviour),
    web.get("/_sim/records", get_records),
    web.get("/_sim/stats", get_stats),
    web.get("/_sim/requests", get_requests),
    web.post("/_sim/reset", post_reset),
]


def build_app(config: SimConfig) -> web.Application:
    sim = Simulator(config)
    app = web.Application(middlewares=[_count_requests])
    app[SIM] = sim
    app.add_routes(sim.twilio.routes())
    app.add_routes(CONTROL_ROUTES)
    push = _optional("simulator.push")
    if push is not None:
        if config.fcm_service_account is None:
            # Holds a private key: made for this run, removed with it.
            scratch = tempfile.TemporaryDirectory(prefix="simulator-")
            config.fcm_service_account = str(Path(scratch.name) / "fcm-service-account.json")

            async def remove_scratch(_: web.Application) -> None:
                scratch.cleanup()

            app.on_cleanup.append(remove_scratch)
        app.add_routes(push.routes(sim))
    printhouse = _optional("simulator.printhouse") if config.printhouse_dir else None

    async def on_startup(_: web.Application) -> None:
        await sim.open()
        if printhouse is not None:
            house = printhouse.PrintHouse(
                Path(config.printhouse_dir), sim.behaviour.by_postal,
                config.time_scale if config.printhouse_time_scale is None else config.printhouse_time_scale,
                sim.records, faults=sim.faults
            )
            sim.serve(house.run)

    async def on_cleanup(_: web.Application) -> None:
        await sim.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def start(config: SimConfig) -> tuple[web.AppRunner, int]:
    """Serves the simulator on the running loop; `await runner.cleanup()` stops it.

    The socket is bound first, so with port 0 `config.port` already holds the
    real port while the app is built (push needs it for its token URL).
    """
    sock = socket.create_server((config.host, config.port), backlog=2048)
    config.port = sock.getsockname()[1]
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, config.port


def simulator_of(runner: web.AppRunner) -> Simulator:
    return runner.app[SIM]
