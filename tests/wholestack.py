"""The whole gateway, for real: embedded Redis (a real redis-server), a real
Celery worker process, the API and pump, and the provider simulator on
loopback, spoken to by the unchanged twilio library."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import orjson
import pytest
from stackkit import ACCOUNT_SID, AUTH_TOKEN, TIME_SCALE, Stack, free_port, start_stack, stop_stack

from gateway import service
from gateway.agencies import create_agency
from gateway.store import connect
from simulator import SimConfig, simulator_of, start

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
    """A fresh city on `stack`: Redis emptied, the simulator and the API started, one agency."""
    log_offset = stack.log_size()
    redis = connect(stack.urls.redis)
    await redis.flushdb()
    runner, _ = await start(SimConfig(
        port=stack.sim_port, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
        gateway_url=stack.settings.public_url, time_scale=TIME_SCALE, seed=11, callback_backoff_s=0.2,
        fcm_service_account=stack.settings.fcm_service_account or None,
        printhouse_dir=stack.settings.printhouse or None))
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
