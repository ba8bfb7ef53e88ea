"""A process on another host with other keys is refused before it can seal,
open or sign anything the rest of the gateway cannot read."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import Settings
from gateway.shared_keys import KeyMismatch, check
from gateway.store import connect


def host_env(data_dir, **keys: bytes) -> dict[str, str]:
    return {"GATEWAY_DATA_DIR": str(data_dir),
            **{name: base64.urlsafe_b64encode(value).decode() for name, value in keys.items()}}


async def test_hosts_given_the_same_keys_all_start(redis, tmp_path):
    same = {"GATEWAY_CONTACT_KEY": os.urandom(32), "GATEWAY_LOOKUP_KEY": os.urandom(32),
            "GATEWAY_VAPID_PRIVATE_KEY": os.urandom(32)}
    await check(redis, Settings.from_env(host_env(tmp_path / "api", **same)))
    await check(redis, Settings.from_env(host_env(tmp_path / "worker", **same)))


async def test_a_host_that_made_its_own_keys_is_refused_naming_each_variable(redis, tmp_path):
    await check(redis, Settings.from_env(host_env(tmp_path / "api")))
    # A second host left the keys unset: it made its own, in its own data folder.
    with pytest.raises(KeyMismatch) as refused:
        await check(redis, Settings.from_env(host_env(tmp_path / "worker")))
    assert all(name in str(refused.value) for name in
               ("GATEWAY_CONTACT_KEY", "GATEWAY_LOOKUP_KEY", "GATEWAY_VAPID_PRIVATE_KEY"))


async def test_only_the_key_that_differs_is_named(redis, tmp_path):
    contact, lookup, vapid = os.urandom(32), os.urandom(32), os.urandom(32)
    await check(redis, Settings.from_env(host_env(tmp_path, GATEWAY_CONTACT_KEY=contact,
                                                  GATEWAY_LOOKUP_KEY=lookup, GATEWAY_VAPID_PRIVATE_KEY=vapid)))
    with pytest.raises(KeyMismatch) as refused:
        await check(redis, Settings.from_env(host_env(tmp_path, GATEWAY_CONTACT_KEY=contact,
                                                      GATEWAY_LOOKUP_KEY=os.urandom(32),
                                                      GATEWAY_VAPID_PRIVATE_KEY=vapid)))
    assert "GATEWAY_LOOKUP_KEY" in str(refused.value)
    assert "GATEWAY_CONTACT_KEY" not in str(refused.value) and "VAPID" not in str(refused.value)


def test_a_worker_with_another_contact_key_stops_with_the_reason(redis_url, tmp_path):
    client = connect(redis_url)

    async def api_started():
        await client.flushdb()
        await check(client, Settings.from_env(host_env(tmp_path / "api")))
        await client.aclose()

    asyncio.run(api_started())
    result = CliRunner().invoke(main, ["worker"], env={
        **host_env(tmp_path / "worker"), "GATEWAY_REDIS_URL": redis_url})
    assert result.exit_code == 1
    assert "GATEWAY_CONTACT_KEY" in result.output
    assert "Traceback" not in result.output
