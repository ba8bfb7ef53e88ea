"""A resident sets how they want to be reached, from the link in their message."""

from __future__ import annotations

import orjson
import pytest
from multidict import MultiDict

from gateway import keys
from gateway.samples import phone, resident
from tests.console.town import NONCE, heat_wave


@pytest.fixture
async def link(town):
    await town.add(resident("halmoni", phone("+821055500001"), languages=["ko"]))
    town.sms.script["halmoni"] = "sent"
    aid = await town.post_alert(heat_wave({"residents": ["halmoni"]}))
    return aid, await town.token(aid, "halmoni")


async def form_nonce(client, aid, token) -> str:
    return NONCE.search(await (await client.get(f"/r/{aid}.{token}")).text()).group(1)


async def test_a_resident_saves_languages_channels_needs_quiet_hours_and_consent(client, town, link):
    aid, token = link
    html = await (await client.get(f"/r/{aid}.{token}")).text()
    assert "내 알림 설정" in html and "방해 금지 시간" in html
    form = MultiDict([("nonce", NONCE.search(html).group(1)), ("lang", "ko"), ("lang1", "ko"), ("lang2", "en"),
                      ("lang3", ""), ("channel1", "voice"), ("channel2", "sms"), ("needs", "low_vision"),
                      ("needs", "lives_alone"), ("quiet_start", "22:00"), ("quiet_end", "07:00")])
    r = await client.post(f"/r/{aid}.{token}", data=form, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/r/{aid}.{token}?lang=ko&saved=1"
    profile = orjson.loads(await town.redis.hget(keys.resident("halmoni"), "p"))
    assert profile["l"] == ["ko", "en"] and profile["co"] == ["voice", "sms"]
    assert profile["n"] == ["low_vision", "lives_alone"]
    assert profile["qh"] == {"start": "22:00", "end": "07:00"}
    assert profile["ne"] is False  # the box was left unticked
    # The contact points, sealed apart from the profile, are untouched.
    assert (await town.registry.get("halmoni"))["contacts"][0]["number"] == "+821055500001"
    shown = await (await client.get(f"/r/{aid}.{token}?lang=ko&saved=1")).text()
    assert "저장했습니다" in shown and 'value="22:00"' in shown


async def test_half_a_quiet_hours_range_is_refused_and_nothing_saved(client, town, link):
    aid, token = link
    before = await town.redis.hget(keys.resident("halmoni"), "p")
    r = await client.post(f"/r/{aid}.{token}", data={"nonce": await form_nonce(client, aid, token), "lang": "en",
                                                     "lang1": "ko", "quiet_start": "22:00"})
    assert r.status == 422 and "Give both times" in await r.text()
    assert await town.redis.hget(keys.resident("halmoni"), "p") == before


async def test_settings_without_the_page_nonce_are_refused(client, town, link):
    aid, token = link
    before = await town.redis.hget(keys.resident("halmoni"), "p")
    r = await client.post(f"/r/{aid}.{token}", data={"nonce": "123.abc", "lang1": "en", "needs": "deaf"})
    assert r.status == 403
    assert await town.redis.hget(keys.resident("halmoni"), "p") == before


async def test_a_wrong_token_opens_no_settings(client, town, link):
    aid, _ = link
    assert (await client.get(f"/r/{aid}.guessed")).status == 404
    r = await client.post(f"/r/{aid}.guessed", data={"lang1": "en"})
    assert r.status == 404
