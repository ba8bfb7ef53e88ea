"""The re-verification campaign over the real stack: a resident whose number
went stale replies 1, and the number is fresh again."""

from __future__ import annotations

import orjson
import pytest

from gateway import contact_ages, keys
from gateway.samples import phone, resident
from gateway.transitions import now_ms

pytestmark = pytest.mark.e2e


async def test_a_resident_who_replies_1_to_is_this_still_your_number_makes_it_fresh(city):
    await city.add(resident("rv1", phone("+821055560001", "feature_phone")),
                   {"phones": ["+821055560001"], "sms": {"outcome": "delivered", "reply": "1", "reply_after_s": 1}})
    lc = orjson.loads(await city.redis.hget(keys.resident("rv1"), "lc"))
    lc[0][1] -= 400 * contact_ages.DAY_MS
    await city.redis.hset(keys.resident("rv1"), "lc", orjson.dumps(lc))
    async with city.http.post(f"{city.api}/v1/residents/reverify", json={}, headers=city.auth) as r:
        assert r.status == 202, await r.text()
        campaign = await r.json()
    assert campaign["residents"] == 1
    summary = await city.settled(campaign["id"], timeout=60)
    assert summary["deliveries"]["confirmed"] == 1
    assert (await city.path(campaign["id"], "rv1"))["confirmed_by"] == {"channel": "sms", "level": "acknowledged"}
    text = [r["text"] for r in city.received("rv1") if r["channel"] == "sms"][0]
    assert "아직 이 번호를 쓰시나요?" in text
    fresh = contact_ages.ages_ms(await city.redis.hget(keys.resident("rv1"), "lc"))[0]
    assert fresh > now_ms() - 120_000
    async with city.http.post(f"{city.api}/v1/residents/reverify", json={}, headers=city.auth) as r:
        assert (r.status, (await r.json())["residents"]) == (200, 0)
