"""Fixtures every kind of test may use: one real Redis (the embedded
redis-server) for the whole session, emptied before each test that asks;
and, from tests/wholestack.py, the whole gateway (`stack`, `city`) that the
API tests (tests/api) and the whole-stack stories (tests/e2e) share."""

from __future__ import annotations

import pytest

from gateway.embedded_redis import EmbeddedRedis
from gateway.store import connect

pytest_plugins = ["hang_report", "wholestack"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
async def redis(redis_url):
    client = connect(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()
