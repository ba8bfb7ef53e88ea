"""Provider callbacks arrive late, twice, out of order, or forged: the state
moves only as it should. The simulator's own callbacks are switched off and
the test plays Twilio, signing each callback as Twilio does."""

from __future__ import annotations

import asyncio

import pytest
from twilio.request_validator import RequestValidator

pytestmark = pytest.mark.e2e

NUMBER = "+821055599999"


async def sms_in_flight(city, *, sms_timeout=30, voice=False, severity="Moderate"):
    """An alert whose SMS was sent; the provider will say nothing by itself, and
    asked before the step escalates, says the text is still on its way."""
    city.sim.faults.set({"twilio-sms": {"lost_callbacks": 1.0}, "twilio-voice": {"lost_callbacks": 1.0}})
    contacts = [{"type": "phone", "number": NUMBER, "handset": "feature_phone"}]
    await city.add({"id": "cb1", "languages": ["ko"], "district": "11110", "contacts": contacts},
                   {"phones": [NUMBER], "sms": {"delay_s": 100_000}, "voice": {"answer": "human", "press": []}})
    aid = await city.post_alert({
        "event": "Flood", "severity": severity,
        "content": {"ko": {"headline": "홍수 주의보", "body": "하천 수위가 오르고 있습니다."}},
        "audience": {"residents": ["cb1"]},
        "policy": {"step_timeouts": {"sms": sms_timeout, "voice": 30}, "channels": ["sms", "voice"] if voice else ["sms"]},
    })
    for _ in range(100):
        async with city.http.get(f"{city.api}/v1/alerts/{aid}/deliveries/cb1", headers=city.auth) as r:
            path = await r.json() if r.status == 200 else {"attempts": []}
        if path["attempts"] and path["attempts"][0]["provider_ref"]:
            return aid, path["attempts"][0]["provider_ref"]
        await asyncio.sleep(0.05)
    raise AssertionError("the SMS was never sent")


async def twilio_says(city, aid, status, sid, *, step=0, attempt=0, error="", sign=True, tamper=False) -> int:
    url = f"{city.api}/hooks/twilio/sms/{aid}/cb1/{step}/{attempt}/0"
    settings = city.stack.settings
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": settings.twilio_account_sid, "From": "+15005550006", "To": NUMBER,
            "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
    if error:
        form["ErrorCode"] = error
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(url, form) if sign else ""
    if tamper:
        form["MessageStatus"] = "delivered"
    async with city.http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as r:
        return r.status


async def counts(city, aid) -> dict:
    return await city.get(f"/v1/alerts/{aid}")


async def test_a_repeated_delivery_receipt_confirms_once(city):
    aid, sid = await sms_in_flight(city)
    assert await twilio_says(city, aid, "delivered", sid) == 204
    assert await twilio_says(city, aid, "delivered", sid) == 204
    summary = await counts(city, aid)
    assert summary["deliveries"]["confirmed"] == 1
    assert summary["channels"]["sms"]["confirmed_by"] == 1


async def test_delivered_before_sent_confirms_and_the_late_sent_changes_nothing(city):
    aid, sid = await sms_in_flight(city)
    await twilio_says(city, aid, "delivered", sid)
    await twilio_says(city, aid, "sent", sid)
    path = await city.path(aid, "cb1")
    assert path["state"] == "confirmed"
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}


async def test_a_failure_after_delivery_does_not_undo_it(city):
    aid, sid = await sms_in_flight(city, severity="Severe")  # needs an acknowledgement
    await twilio_says(city, aid, "delivered", sid)
    await twilio_says(city, aid, "failed", sid, error="30008")
    path = await city.path(aid, "cb1")
    assert path["state"] == "in_progress" and path["step"] == 0


async def test_a_late_receipt_for_an_old_step_is_recorded_but_moves_nothing(city):
    aid, sid = await sms_in_flight(city, sms_timeout=1, voice=True)
    for _ in range(100):  # wait for the SMS step to time out and the call to start
        path = await city.path(aid, "cb1")
        if path["step"] == 1:
            break
        await asyncio.sleep(0.1)
    assert path["step"] == 1
    await twilio_says(city, aid, "delivered", sid, step=0)
    after = await city.path(aid, "cb1")
    assert after["state"] == "in_progress" and after["step"] == 1
    sms = [a for a in after["attempts"] if a["channel"] == "sms"][0]
    assert "delivered" in [s["status"] for s in sms["statuses"]]


async def test_an_unsigned_or_tampered_callback_is_refused_and_changes_nothing(city):
    aid, sid = await sms_in_flight(city)
    assert await twilio_says(city, aid, "delivered", sid, sign=False) == 403
    assert await twilio_says(city, aid, "failed", sid, tamper=True) == 403
    path = await city.path(aid, "cb1")
    assert path["state"] == "in_progress"
    assert [s["status"] for s in path["attempts"][0]["statuses"]] == ["claimed", "queued"]


async def test_a_callback_whose_body_is_not_text_is_refused_and_changes_nothing(city):
    aid, sid = await sms_in_flight(city)
    path = f"/hooks/twilio/sms/{aid}/cb1/0/0/0"
    async with city.http.post(f"{city.api}{path}", data=b"MessageStatus=delivered&\xff\xfe=\xff", headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}) as r:
        assert r.status == 403
    assert (await city.path(aid, "cb1"))["state"] == "in_progress"


async def test_a_callback_after_the_delivery_ended_is_only_recorded(city):
    aid, sid = await sms_in_flight(city)
    await twilio_says(city, aid, "delivered", sid)
    await twilio_says(city, aid, "undelivered", sid, error="30003")
    summary = await counts(city, aid)
    assert summary["deliveries"]["confirmed"] == 1 and summary["deliveries"]["unreachable"] == 0


async def test_duplicated_and_reordered_callbacks_from_the_simulator_leave_one_outcome_each(city):
    city.sim.faults.set({"twilio-sms": {"duplicate_callbacks": 1.0, "reorder_callbacks": 0.5}})
    people = []
    for i in range(40):
        number = f"+821055{700000 + i}"
        await city.add({"id": f"d{i}", "languages": ["ko"], "district": "11110",
                        "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]},
                       {"phones": [number], "sms": {"outcome": "delivered"}})
        people.append(f"d{i}")
    aid = await city.post_alert({
        "event": "Flood", "severity": "Moderate",
        "content": {"ko": {"headline": "홍수 주의보", "body": "하천 수위가 오르고 있습니다."}},
        "audience": {"residents": people}, "policy": {"step_timeouts": {"sms": 10}, "channels": ["sms"]},
    })
    summary = await city.settled(aid)
    assert summary["deliveries"]["confirmed"] == 40
    assert summary["channels"]["sms"]["confirmed_by"] == 40
    assert summary["fallbacks"] == 0
