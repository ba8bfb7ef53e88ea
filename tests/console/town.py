"""A small town for console and resident-page tests: a real embedded Redis,
the real engine, registry and Lua transitions, and the real aiohttp app;
only the providers are scripted, and the Celery hand-off runs in process.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from channels.base import Channel, Outcome, ProviderEvent
from gateway import keys, samples
from gateway.agencies import create_agency
from gateway.alerts import Alerts, resolve_audience
from gateway.api.app import make_app
from gateway.config import Settings
from gateway.console.auth import create_operator
from gateway.engine import Engine
from gateway.fallback import turn_of
from gateway.registry import Registry, normalise
from gateway.validate import alert_problems

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


class ScriptedChannel(Channel):
    """A provider that answers from a script: resident id -> status of the send."""


    def __init__(self, name: str, contact_types: set[str], handsets: set[str], script: dict[str, str]):
        self.name = name
        self.contact_types = frozenset(contact_types)
        self.handsets = frozenset(handsets)
        self.script = script
        self.sent: list[tuple[str, str]] = []

    async def send(self, message, recipient) -> Outcome:
        self.sent.append((recipient.resident_id, message.language))
        status = self.script.get(recipient.resident_id, "sent")
        if status == "failed":
            return Outcome("failed", f"fake-{self.name}", error_code="30003", permanent=True)
        return Outcome(status, f"fake-{self.name}", ref=f"{self.name}-{len(self.sent)}")


@dataclass
class InlineDispatch:
    """What the Celery workers would do, done in this process."""

    engine: Engine
    redis: aioredis.Redis
    tasks: list = field(default_factory=list)

    def fan_out(self, aid: str, turn: int) -> None:
        self.tasks.append(asyncio.ensure_future(self._fan_out(aid)))

    async def _fan_out(self, aid: str) -> None:
        view = await self.engine.alert(aid)
        rids = await resolve_audience(self.redis, view.doc["audience"], drill=False)
        await self.redis.hset(keys.alert(aid), mapping={"targeted": len(rids), "status": "active", "fanned": 1})
        await self.engine.plan_and_send(aid, 0, rids)

    def close_open(self, aid: str, state: str) -> None:
        self.tasks.append(asyncio.ensure_future(self.engine.close_open(aid, state)))

    def send_steps(self, aid: str, items, turn: int) -> None:
        self.tasks.append(asyncio.ensure_future(self.engine.send(aid, list(items))))

    def due(self, aid: str, members: list[str], turn: int) -> None:
        self.tasks.append(asyncio.ensure_future(self.engine.due(aid, members)))

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop(0)


def settings_for(data_dir, redis_url: str, **extra) -> Settings:
    return Settings(data_dir=data_dir, redis_url=redis_url, contact_key=os.urandom(32), lookup_key=os.urandom(32),
                    **extra)


def heat_wave(audience: dict, **fields) -> dict:
    """The sample heat wave; in town a delivery closes once delivered."""
    return samples.heat_wave(audience, policy={"confirmation": "delivered"}) | fields


@dataclass
class Town:
    settings: Settings
    redis: aioredis.Redis
    engine: Engine
    dispatch: InlineDispatch
    sms: ScriptedChannel
    voice: ScriptedChannel
    agency_id: str = ""
    agency_key: str = ""

    @property
    def registry(self) -> Registry:
        return self.engine.registry

    def app(self):
        return make_app(self.settings, self.redis, self.engine, self.dispatch)

    async def add(self, *residents: dict) -> None:
        docs = []
        for r in residents:
            doc, errors = normalise(r)
            assert not errors, errors
            docs.append(doc)
        await self.registry.put_many(docs)

    async def post_alert(self, doc: dict) -> str:
        assert alert_problems(doc) == []
        aid, _ = await Alerts(self.redis).create(self.agency_id, doc, None)
        self.dispatch.fan_out(aid, turn_of(doc))
        await self.dispatch.settle()
        return aid

    async def summary(self, aid: str) -> dict:
        return await Alerts(self.redis).summary(aid)

    async def token(self, aid: str, rid: str) -> str:
        """The token of the resident's page link, as their messages carry it."""
        assert await self.redis.exists(keys.delivery(aid, rid)), "the resident is not in that alert"
        return self.engine.vault.link_token(aid, rid)

    async def delivery(self, aid: str, rid: str) -> dict:
        return {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.delivery(aid, rid))).items()}

    async def report(self, aid: str, rid: str, status: str, channel: str = "sms", provider: str = "fake-sms") -> str:
        d = await self.delivery(aid, rid)
        return await self.engine.report(ProviderEvent(aid, rid, int(d["k"]), int(d["n"]), status, provider,
                                                      channel=channel))

    async def operator(self, name: str, role: str) -> None:
        await create_operator(self.redis, name, role, PASSWORD)


async def make_town(data_dir, redis_url: str, **settings) -> Town:
    s = settings_for(data_dir, redis_url, **settings)
    redis = aioredis.from_url(redis_url)
    await redis.flushdb()
    engine = Engine(s, redis)
    sms = ScriptedChannel("sms", {"phone"}, {"smartphone", "feature_phone"}, {})
    voice = ScriptedChannel("voice", {"phone"}, {"smartphone", "feature_phone", "landline"}, {})
    engine.channels = {"sms": sms, "voice": voice}
    dispatch = InlineDispatch(engine, redis)
    engine.follow_up = dispatch.send_steps
    town = Town(s, redis, engine, dispatch, sms, voice)
    agency, town.agency_key = await create_agency(redis, "Seoul Metropolitan Government", rate_per_s=10_000)
    town.agency_id = agency.id
    return town


async def sign_in(client: TestClient, name: str, password: str = PASSWORD):
    """Open the login form (for its CSRF token) and post it, as a browser does."""
    form = await (await client.get("/ops/login")).text()
    return await client.post("/ops/login", data={"csrf": CSRF.search(form).group(1), "name": name,
                                                 "password": password, "next": "/ops/alerts"},
                              allow_redirects=False)


async def csrf_of(client: TestClient, path: str = "/ops/alerts") -> str:
    return CSRF.search(await (await client.get(path)).text()).group(1)


# Fixtures, imported by the conftest of each test folder that uses the town.

@pytest.fixture
async def town(redis_url, tmp_path):
    t = await make_town(tmp_path, redis_url)
    yield t
    await t.dispatch.settle()
    await t.redis.aclose()


@pytest.fixture
async def client(town):
    async with TestClient(TestServer(town.app())) as c:
        yield c
