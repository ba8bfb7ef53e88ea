"""Rotating the key that seals residents' contact data: nothing already
stored or already sent stops working, and `gateway keys reseal` lets the old
key go."""

from __future__ import annotations

import asyncio
import base64
import os

import orjson
import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway import keys
from gateway.cli import main
from gateway.config import Settings
from gateway.crypto import Vault, key_id
from gateway.registry import Registry
from gateway.store import connect

OLD, NEW, LOOKUP = os.urandom(32), os.urandom(32), os.urandom(32)
CONTACT = {"name": "김영희", "contacts": [{"type": "phone", "number": "+821055501234", "handset": "smartphone"}]}


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def resident(rid: str) -> dict:
    return {"id": rid, "languages": ["ko"], "district": "11110", "name": "김영희",
            "contacts": [{"type": "phone", "number": f"+8210555{int(rid[1:]):05d}", "handset": "smartphone"}]}


def test_a_sealed_value_names_the_key_that_sealed_it():
    sealed = Vault(NEW, LOOKUP).seal(CONTACT, bound_to="r1")
    assert sealed[:1] == b"\x01" and sealed[1:5] == key_id(NEW) != key_id(OLD)
    assert Vault(NEW, LOOKUP).is_current(sealed) and not Vault(OLD, LOOKUP, (NEW,)).is_current(sealed)


def test_contact_data_sealed_before_key_ids_still_opens_after_a_rotation():
    nonce = os.urandom(12)
    before_key_ids = nonce + AESGCM(OLD).encrypt(nonce, orjson.dumps(CONTACT), b"r1")
    assert Vault(OLD, LOOKUP).open(before_key_ids, bound_to="r1") == CONTACT
    rotated = Vault(NEW, LOOKUP, (OLD,))
    assert rotated.open(before_key_ids, bound_to="r1") == CONTACT
    assert not rotated.is_current(before_key_ids)


def test_old_data_opens_and_new_data_uses_the_new_key():
    old = Vault(OLD, LOOKUP).seal(CONTACT, bound_to="r1")
    rotated = Vault(NEW, LOOKUP, (OLD,))
    assert rotated.open(old, bound_to="r1") == CONTACT
    new = rotated.seal(CONTACT, bound_to="r1")
    assert Vault(NEW, LOOKUP).open(new, bound_to="r1") == CONTACT
    with pytest.raises(InvalidTag):
        Vault(OLD, LOOKUP).open(new, bound_to="r1")


def test_a_sealed_value_still_opens_for_its_own_resident_only():
    sealed = Vault(NEW, LOOKUP, (OLD,)).seal(CONTACT, bound_to="r1")
    with pytest.raises(InvalidTag):
        Vault(NEW, LOOKUP, (OLD,)).open(sealed, bound_to="r2")


def test_a_link_sent_before_the_rotation_still_opens_the_residents_message():
    sent_yesterday = Vault(OLD, LOOKUP).link_token("al_1", "r1")
    rotated = Vault(NEW, LOOKUP, (OLD,))
    assert rotated.resident_of("al_1", sent_yesterday) == "r1"
    assert rotated.resident_of("al_2", sent_yesterday) is None
    assert rotated.link_token("al_1", "r1") != sent_yesterday
    # Once the old key is gone, so are its links.
    assert Vault(NEW, LOOKUP).resident_of("al_1", sent_yesterday) is None


def test_an_old_key_that_is_not_a_key_is_named_at_start():
    with pytest.raises(ValueError, match="GATEWAY_CONTACT_KEYS_OLD"):
        Settings.from_env({"GATEWAY_CONTACT_KEY": b64(NEW), "GATEWAY_LOOKUP_KEY": b64(LOOKUP),
                           "GATEWAY_CONTACT_KEYS_OLD": f"{b64(OLD)},c2hvcnQ"})


def test_settings_pass_old_keys_on_to_the_processes_they_start():
    settings = Settings.from_env({"GATEWAY_CONTACT_KEY": b64(NEW), "GATEWAY_LOOKUP_KEY": b64(LOOKUP),
                                  "GATEWAY_CONTACT_KEYS_OLD": f" {b64(OLD)} ,"})
    assert settings.contact_keys_old == (OLD,)
    assert Settings.from_env(settings.env()).contact_keys_old == (OLD,)


def test_rotate_reseal_and_drop_the_old_key_and_every_resident_still_reads(redis_url, tmp_path):
    """The rotation the README describes, step by step, through `gateway keys reseal`."""
    env = {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_LOOKUP_KEY": b64(LOOKUP)}

    async def with_registry(contact_key, old_keys, work):
        redis = connect(redis_url)
        try:
            return await work(redis, Registry(redis, Vault(contact_key, LOOKUP, old_keys)))
        finally:
            await redis.aclose()

    async def before(redis, registry):
        await redis.flushdb()
        await registry.put_many([resident(f"r{i}") for i in range(1, 1201)])

    async def after_rotation(redis, registry):
        await registry.put_many([resident("r2000")])  # written while both keys are configured
        return [await registry.get(rid) for rid in ("r1", "r1200", "r2000")]

    async def sealed_values(redis, registry):
        return [await redis.hget(keys.resident(f"r{i}"), "c") for i in (1, 600, 1200, 2000)]

    async def everyone(redis, registry):
        return [await registry.get(f"r{i}") for i in (*range(1, 1201), 2000)]

    asyncio.run(with_registry(OLD, (), before))
    # Rotation: the new key is current, the old one only opens.
    read = asyncio.run(with_registry(NEW, (OLD,), after_rotation))
    assert [r["contacts"][0]["number"] for r in read] == ["+821055500001", "+821055501200", "+821055502000"]
    stored = asyncio.run(with_registry(NEW, (OLD,), sealed_values))
    assert [c[1:5] for c in stored] == [key_id(OLD)] * 3 + [key_id(NEW)]

    rotated = {**env, "GATEWAY_CONTACT_KEY": b64(NEW), "GATEWAY_CONTACT_KEYS_OLD": b64(OLD)}
    done = CliRunner().invoke(main, ["keys", "reseal", "--page", "500"], env=rotated)
    assert done.exit_code == 0, done.output
    assert "re-sealed 1200 of 1201 residents and 0 mail tray files" in done.output
    assert key_id(NEW).hex() in done.output
    # Run again (as after an interruption): nothing left to do.
    again = CliRunner().invoke(main, ["keys", "reseal"], env=rotated)
    assert "re-sealed 0 of 1201 residents" in again.output

    # The old key removed: every resident still reads, with the number they gave.
    residents = asyncio.run(with_registry(NEW, (), everyone))
    assert [r["contacts"][0]["number"] for r in residents] == [
        f"+8210555{i:05d}" for i in (*range(1, 1201), 2000)]


def test_reseal_keeps_what_the_agency_wrote_meanwhile(redis_url):
    """A resident replaced or erased between reseal's read and its write keeps the agency's version."""
    async def go():
        redis = connect(redis_url)
        try:
            await redis.flushdb()
            await Registry(redis, Vault(OLD, LOOKUP)).put_many([resident("r1"), resident("r2")])
            registry = Registry(redis, Vault(NEW, LOOKUP, (OLD,)))
            read = await registry.sealed_with_old_keys(["r1", "r2"])
            await registry.put_many([{**resident("r1"), "name": "박영희"}])
            await registry.delete("r2")
            swapped = await registry.reseal(read)
            return swapped, await registry.get("r1"), await redis.exists(keys.resident("r2"))
        finally:
            await redis.aclose()

    swapped, r1, r2_left = asyncio.run(go())
    assert swapped == 0 and r1["name"] == "박영희" and r2_left == 0
