"""Each kind of resident ends where their profile says, over the real stack."""

from __future__ import annotations

import pytest
from stackkit import heat_wave

from gateway.samples import phone, resident

pytestmark = pytest.mark.e2e

async def test_feature_phone_resident_gets_sms_confirmed_by_delivery_receipt(city):
    await city.add(resident("fp1", phone("+821055500001", "feature_phone")),
                   {"phones": ["+821055500001"], "sms": {"outcome": "delivered"}})
    aid = await city.post_alert(heat_wave({"residents": ["fp1"]}))
    summary = await city.settled(aid)
    assert summary["deliveries"]["confirmed"] == 1
    path = await city.path(aid, "fp1")
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert [r["channel"] for r in city.received("fp1")] == ["sms"]


async def test_landline_only_resident_is_called_and_never_texted(city):
    await city.add(resident("ll1", phone("+8227250001", "landline")),
                   {"phones": ["+8227250001"], "voice": {"answer": "human", "press": ["1"]}})
    aid = await city.post_alert(heat_wave({"residents": ["ll1"]}))
    await city.settled(aid)
    path = await city.path(aid, "ll1")
    assert path["state"] == "confirmed"
    assert path["confirmed_by"]["channel"] == "voice"
    assert {r["channel"] for r in city.received("ll1")} == {"voice"}


async def test_resident_with_no_contact_is_reported_unreachable_at_once(city):
    await city.add(resident("nc1"))
    aid = await city.post_alert(heat_wave({"residents": ["nc1"]}))
    await city.settled(aid)
    path = await city.path(aid, "nc1")
    assert path["state"] == "unreachable"
    assert path["reasons"][0]["reason"].startswith("no contact point")


async def test_a_resident_who_listens_to_the_end_without_pressing_counts_as_delivered_not_acknowledged(city):
    await city.add(resident("ll2", phone("+8227250002", "landline")),
                   {"phones": ["+8227250002"], "voice": {"answer": "human", "press": []}})
    aid = await city.post_alert(heat_wave({"residents": ["ll2"]}))
    await city.settled(aid)
    path = await city.path(aid, "ll2")
    assert path["confirmed_by"] == {"channel": "voice", "level": "delivered"}


async def test_an_answering_machine_never_confirms_a_call(city):
    await city.add(resident("ll3", phone("+8227250003", "landline")),
                   {"phones": ["+8227250003"], "voice": {"answer": "machine"}})
    aid = await city.post_alert(heat_wave({"residents": ["ll3"]}))
    await city.settled(aid)
    path = await city.path(aid, "ll3")
    assert path["state"] == "unreachable"
    heard = city.received("ll3")[0]
    assert heard["channel"] == "voice" and heard["answered_by"].startswith("machine")
    assert heard["pressed"] == []


async def test_a_feature_phone_resident_who_replies_1_acknowledges_a_severe_alert(city):
    await city.add(resident("fp2", phone("+821055500002", "feature_phone")),
                   {"phones": ["+821055500002"], "sms": {"outcome": "delivered", "reply": "1", "reply_after_s": 1}})
    aid = await city.post_alert(heat_wave({"residents": ["fp2"]}, severity="Severe"))
    await city.settled(aid)
    path = await city.path(aid, "fp2")
    assert path["confirmed_by"] == {"channel": "sms", "level": "acknowledged"}
    assert [r["channel"] for r in city.received("fp2")] == ["sms"]
