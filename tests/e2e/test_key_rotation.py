"""A rotation of the contact-data key, over the real stack: residents sealed
under the old key still get their alerts and their links still open, and
after `gateway keys reseal` nothing is left under the old key."""

from __future__ import annotations

import base64
import os

import pytest

from gateway import keys
from gateway.cli import reseal
from gateway.crypto import Vault, key_id
from gateway.registry import Registry

pytestmark = pytest.mark.e2e

OLD, NEW = os.urandom(32), os.urandom(32)


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks):
    s = stacks.start(tmp_path_factory.mktemp("rotated"), GATEWAY_CONTACT_KEY=b64(NEW),
                     GATEWAY_CONTACT_KEYS_OLD=b64(OLD))
    yield s
    stacks.stop(s)


async def test_a_resident_sealed_before_the_rotation_still_gets_the_alert_and_reseal_moves_them(city):
    # Imported while OLD was the current key.
    before = Registry(city.redis, Vault(OLD, city.stack.settings.lookup_key))
    await before.put_many([{"id": "k1", "name": "김예전", "languages": ["ko"], "district": "11110",
                            "contacts": [{"type": "phone", "number": "+821055517001", "handset": "feature_phone"}]}])
    city.sim.behaviour.add_many([{"resident": "k1", "phones": ["+821055517001"], "sms": {"outcome": "delivered"}}])
    aid = await city.post_alert({
        "event": "Water cut", "severity": "Moderate", "urgency": "Expected",
        "content": {"ko": {"headline": "단수 안내", "body": "내일 오전 9시부터 단수됩니다."}},
        "audience": {"residents": ["k1"]}, "policy": {"step_timeouts": {"sms": 5, "voice": 5}}})
    await city.settled(aid, timeout=40)
    assert (await city.path(aid, "k1"))["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert [r["to"] for r in city.received("k1")] == ["+821055517001"]
    # The agency reads the resident back as it gave it.
    assert (await city.get("/v1/residents/k1"))["contacts"][0]["number"] == "+821055517001"

    # A link sent under the old key (yesterday's SMS) still opens the resident's page.
    sent_before = Vault(OLD, city.stack.settings.lookup_key).link_token(aid, "k1")
    async with city.http.get(f"{city.api}/m/{aid}.{sent_before}") as r:
        assert r.status == 200 and "단수 안내" in await r.text()

    assert await reseal(city.stack.settings, redis=city.redis) == (1, 1, 0)
    sealed = await city.redis.hget(keys.resident("k1"), "c")
    assert sealed[1:5] == key_id(NEW)
    assert Vault(NEW, city.stack.settings.lookup_key).open(sealed, bound_to="k1")["contacts"][0]["number"] == \
        "+821055517001"
