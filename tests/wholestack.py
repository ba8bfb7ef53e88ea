"""The whole gateway, for real: embedded Redis (a real redis-server), a real
Celery worker process, the API and pump, and the provider simulator on
loopback, spoken to by the unchanged twilio library."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from stackkit import ACCOUNT_SID, AUTH_TOKEN, FROM, free_port

from gateway import service, tasks
from gateway.agencies import create_agency
from gateway.config import Settings
from gateway.store import connect
from simulator import SimConfig, simulator_of, start

TIME_SCALE = 0.01


@dataclass
class Stack:
    settings: Settings
    urls: service.Urls
    sim_port: int
    worker: object

    def restart_worker(self, concurrency: int = 2):
        log = open(self.worker_log, "ab")
        self.worker = service.spawn_worker(self.settings, self.urls, concurrency, stdout=log, stderr=log)
        log.close()
        return self.worker

    @property
    def worker_log(self) -> Path:
        return self.settings.data_dir / "worker.log"

    def task_failures_since(self, offset: int) -> list[str]:
        """Tasks that raised in the worker: the engine must never crash, even
        when timers would carry the residents on regardless."""
        with open(self.worker_log, "rb") as f:
            f.seek(offset)
            return [line.decode(errors="replace") for line in f if b"raised unexpected" in line]

    def log_size(self) -> int:
        return self.worker_log.stat().st_size if self.worker_log.exists() else 0


def start_stack(data, **env: str) -> Stack:
    """A gateway (settings, embedded Redis, a worker process) in `data`; `env`
    adds settings, so a test module can run a stack of its own (a second SMS
    provider, short retry back-off) without changing everyone else's."""
    api_port, sim_port = free_port(), free_port()
    settings = Settings.from_env({
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_PORT": str(api_port),
        "TWILIO_API_BASE": f"http://127.0.0.1:{sim_port}",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "GATEWAY_BATCH_SIZE": "100",
        # App push against the simulator: it writes this service account on first start.
        "GATEWAY_FCM_SERVICE_ACCOUNT": str(data / "fcm-service-account.json"),
        "GATEWAY_FCM_BASE": f"http://127.0.0.1:{sim_port}",
        # Paper mail through the simulated print house's drop box; urgent batches close after 2 s.
        "GATEWAY_PRINTHOUSE": str(data / "printhouse"),
        "GATEWAY_MAIL_URGENT_EVERY_S": "2",
        "GATEWAY_MAIL_POLL_S": "0.2",
        # The simulator has no carrier limits; tests about pacing set their own.
        "GATEWAY_SMS_RATE_PER_SENDER": "5000",
        "GATEWAY_SMS_RATE_PER_PROVIDER": "5000",
        "GATEWAY_VOICE_CPS_PER_SENDER": "1000",
        "GATEWAY_VOICE_CPS_PER_PROVIDER": "1000",
        # The agency callback receivers in these tests listen on loopback.
        "GATEWAY_CALLBACK_NETWORKS": "127.0.0.0/8",
        **env,
    })
    urls = service.urls(settings)
    s = Stack(settings, urls, sim_port, None)
    s.restart_worker()
    forget_broker()
    return s


def forget_broker() -> None:
    """Celery keeps one broker connection and producer pool per process: the
    next API server must open them to its own stack's broker."""
    tasks.app._pool = None
    tasks.app.amqp._producer_pool = None


def stop_stack(s: Stack) -> None:
    service.stop_process(s.worker)
    if s.urls.embedded:
        s.urls.embedded.stop()
    forget_broker()


class Stacks:
    """For test modules that run a stack of their own (their `stack` fixture)."""

    start = staticmethod(start_stack)
    stop = staticmethod(stop_stack)
    free_port = staticmethod(free_port)


@pytest.fixture(scope="session")
def stacks() -> Stacks:
    return Stacks()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("gateway"))
    yield s
    stop_stack(s)


@dataclass
class City:
    """One test's running gateway and simulator, with helpers that read as the domain."""

    stack: Stack
    redis: object
    http: aiohttp.ClientSession
    sim: object
    api: str
    key: str
    app: object = None

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    async def add(self, resident: dict, behaviour: dict | None = None) -> None:
        async with self.http.put(f"{self.api}/v1/residents/{resident['id']}", json=resident, headers=self.auth) as r:
            assert r.status in (200, 201), await r.text()
        if behaviour is not None:
            self.sim.behaviour.add_many([{"resident": resident["id"], **behaviour}])

    async def import_ndjson(self, residents: list[dict], behaviours: list[dict]) -> None:
        body = b"\n".join(orjson.dumps(r) for r in residents)
        async with self.http.post(f"{self.api}/v1/residents/import", data=body, headers={
                **self.auth, "Content-Type": "application/x-ndjson"}) as r:
            assert r.status == 200, await r.text()
        self.sim.behaviour.add_many(behaviours)

    async def post_alert(self, alert: dict, **headers) -> str:
        async with self.http.post(f"{self.api}/v1/alerts", json=alert, headers={**self.auth, **headers}) as r:
            assert r.status == 202, await r.text()
            return (await r.json())["id"]

    async def get(self, path: str) -> dict:
        async with self.http.get(f"{self.api}{path}", headers=self.auth) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def settled(self, aid: str, timeout: float = 60) -> dict:
        """Wait until every targeted resident is in a terminal state."""
        deadline = time.monotonic() + timeout
        while True:
            summary = await self.get(f"/v1/alerts/{aid}")
            if summary["targeted"] and summary["terminal"] == summary["targeted"] or summary["status"] == "done":
                return summary
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled after {timeout}s: {summary}")
            await asyncio.sleep(0.2)

    async def path(self, aid: str, rid: str) -> dict:
        return await self.get(f"/v1/alerts/{aid}/deliveries/{rid}")

    def received(self, rid: str) -> list[dict]:
        return self.sim.records.for_resident(rid)


@pytest.fixture
async def city(stack: Stack):
    redis = connect(stack.urls.redis)
    await redis.flushdb()
    runner, _ = await start(SimConfig(
        port=stack.sim_port, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
        gateway_url=stack.settings.public_url, time_scale=TIME_SCALE, seed=11, callback_backoff_s=0.2,
        fcm_service_account=stack.settings.fcm_service_account or None,
        printhouse_dir=stack.settings.printhouse or None))
    log_offset = stack.log_size()
    try:
        async with service.api_server(stack.settings, stack.urls) as app:
            _, key = await create_agency(redis, "Seoul Metropolitan Government", rate_per_s=10_000)
            async with aiohttp.ClientSession() as http:
                yield City(stack, redis, http, simulator_of(runner), stack.settings.public_url, key, app)
    finally:
        await runner.cleanup()
        await redis.aclose()
    failures = stack.task_failures_since(log_offset)
    assert not failures, "worker tasks raised:\n" + "".join(failures[:5])
