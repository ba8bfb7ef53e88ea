"""Which message a resident's next SMS reply answers (registry.remember_reply)."""

from __future__ import annotations

import os

from gateway import keys
from gateway.crypto import Vault
from gateway.registry import Registry, check_import


async def test_a_reply_target_is_kept_even_after_redis_lost_its_scripts(redis):
    registry = Registry(redis, Vault(os.urandom(32), os.urandom(32)))
    await registry.put_many(check_import([(0, {"id": "r1", "languages": ["ko"], "district": "D01", "contacts": [
        {"type": "phone", "number": "+821012345678", "handset": "feature_phone"}]})]))
    for ref in ("a1/r1/0/0/0", "a2/r1/0/0/0"):
        await redis.script_flush()  # a restarted Redis knows no scripts
        pipe = redis.pipeline(transaction=False)
        registry.remember_reply(pipe, "r1", ref)
        await pipe.execute()
        assert await redis.hget(keys.resident("r1"), keys.REPLY_TARGET) == ref.encode()


async def test_a_send_after_erasure_does_not_bring_the_resident_back(redis):
    registry = Registry(redis, Vault(os.urandom(32), os.urandom(32)))
    pipe = redis.pipeline(transaction=False)
    registry.remember_reply(pipe, "gone", "a1/gone/0/0/0")
    await pipe.execute()
    assert await redis.exists(keys.resident("gone")) == 0
