"""Faults on demand make the provider misbehave the way real ones do."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import pytest
from simkit import AUTH_HEADER, FROM, wait_for
from twilio.base.exceptions import TwilioRestException

from simulator.faults import Faults

STATUS = "/hooks/twilio/sms/status"


async def test_an_outage_answers_503_with_twilio_error_20503(sim, async_twilio_client):
    sim.sim.faults.set({"twilio-sms": {"outage": "503"}})
    with pytest.raises(TwilioRestException) as caught:
        await async_twilio_client.messages.create_async(to="+821040000001", from_=FROM, body="hi")
    assert caught.value.status == 503 and caught.value.code == 20503
    # Voice is another provider and keeps working.
    await async_twilio_client.calls.create_async(to="+821040000001", from_=FROM, twiml="<Response/>")


async def test_a_reset_outage_drops_the_connection(sim):
    sim.sim.faults.set({"twilio-voice": {"outage": "reset"}})
    async with aiohttp.ClientSession(headers=AUTH_HEADER) as http:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.post(f"{sim.url}/2010-04-01/Accounts/{sim.sim.config.account_sid}/Calls.json", data={})


async def test_above_the_rate_limit_twilio_answers_429_20429(sim, async_twilio_client):
    sim.sim.faults.set({"twilio-sms": {"rate_limit": 3}})

    async def send() -> int:
        try:
            await async_twilio_client.messages.create_async(to="+821040000002", from_=FROM, body="hi")
        except TwilioRestException as exc:
            assert exc.code == 20429
            return exc.status
        return 201

    codes = await asyncio.gather(*(send() for _ in range(10)))
    # Ten at once span at most two one-second windows of three each.
    assert 3 <= codes.count(201) <= 6 and codes.count(429) == 10 - codes.count(201)


async def test_an_error_rate_answers_some_requests_with_500(sim, async_twilio_client):
    sim.sim.faults.set({"twilio-sms": {"error_rate": 1.0}})
    with pytest.raises(TwilioRestException) as caught:
        await async_twilio_client.messages.create_async(to="+821040000003", from_=FROM, body="hi")
    assert caught.value.status == 500 and caught.value.code == 20500
    assert not sim.sim.twilio.messages


async def test_a_fail_rate_fails_accepted_messages(sim, async_twilio_client, gateway):
    sim.sim.faults.set({"twilio-sms": {"fail_rate": 1.0}})
    message = await async_twilio_client.messages.create_async(
        to="+821040000004", from_=FROM, body="hi", status_callback=f"{gateway.url}{STATUS}"
    )
    [hit] = await wait_for(lambda: gateway.at(STATUS))
    assert hit.form["MessageStatus"] == "failed" and hit.form["ErrorCode"] == "30008"
    assert sim.sim.twilio.messages[message.sid]["status"] == "failed"


async def test_latency_delays_answers(sim, async_twilio_client):
    sim.sim.faults.set({"twilio-sms": {"latency_ms": 200}})
    started = time.monotonic()
    await async_twilio_client.messages.create_async(to="+821040000005", from_=FROM, body="hi")
    assert time.monotonic() - started >= 0.2


def test_bad_fault_specs_are_refused_whole():
    faults = Faults(random.Random(1), {"fcm": {"outage": True}})
    for bad in ({"sms": {}}, {"twilio-sms": {"error_rate": 2}}, {"twilio-sms": {"outage": "sometimes"}},
                {"twilio-sms": {"colour": "red"}}, {"twilio-sms": {"rate_limit": -1}}):
        with pytest.raises(ValueError):
            faults.set(bad)
    assert faults.to_json()["fcm"]["outage"] == "503"


async def test_the_control_api_sets_faults_adds_residents_and_resets(sim, async_twilio_client, gateway):
    async with aiohttp.ClientSession(base_url=sim.url) as http:
        async with http.put("/_sim/faults", json={"twilio-sms": {"duplicate_callbacks": 1.0}}) as resp:
            assert resp.status == 200
        async with http.get("/_sim/faults") as resp:
            assert (await resp.json())["twilio-sms"]["duplicate_callbacks"] == 1.0
        async with http.put("/_sim/faults", json={"twilio-sms": {"error_rate": 7}}) as resp:
            assert resp.status == 400 and "error_rate" in (await resp.json())["error"]

        ndjson = b'{"resident": "c1", "phones": ["+821040000006"], "sms": {"reply": "1"}}\n'
        async with http.post("/_sim/behaviour", data=ndjson) as resp:
            assert (await resp.json()) == {"added": 1, "residents": 1}
        async with http.post("/_sim/behaviour", json=[{"resident": "c2"}, {"resident": "c3"}]) as resp:
            assert (await resp.json())["residents"] == 3
        async with http.post("/_sim/behaviour", json={"resident": "c4", "voice": {"answer": "maybe"}}) as resp:
            assert resp.status == 400

        message = await async_twilio_client.messages.create_async(
            to="+821040000006", from_=FROM, body="hello", status_callback=f"{gateway.url}{STATUS}"
        )
        await wait_for(lambda: gateway.at("/hooks/twilio/sms/inbound"))
        async with http.get("/_sim/records", params={"resident": "c1"}) as resp:
            [entry] = (await resp.json())["records"]
        assert entry["ref"] == message.sid and entry["status"] == "delivered" and entry["replies"][0]["body"] == "1"
        # The status callback names the gateway's attempt: two records with one callback are one attempt sent twice.
        assert entry["status_callback"] == f"{gateway.url}{STATUS}"
        async with http.get("/_sim/stats") as resp:
            stats = await resp.json()
        assert stats["requests"]["POST /2010-04-01/Accounts/{AccountSid}/Messages.json"] == 1
        assert stats["callbacks"]["duplicated"] >= 2 and stats["records"] == {"sms": {"delivered": 1}}
        # Each provider request is also counted under the address it came from (one host here).
        assert stats["peers"] == {"127.0.0.1": sum(stats["requests"].values())}
        async with http.get("/_sim/requests", params={"path": "Messages.json"}) as resp:
            [sent] = (await resp.json())["requests"]
        assert ["Body", "hello"] in sent["fields"]

        async with http.post("/_sim/reset") as resp:
            assert resp.status == 200
        async with http.get("/_sim/records") as resp:
            assert (await resp.json())["count"] == 0
        async with http.get("/_sim/faults") as resp:
            assert await resp.json() == {}
    assert len(sim.sim.behaviour) == 3 and not sim.sim.twilio.messages


async def test_a_hanging_twilio_never_answers_and_creates_nothing(sim):
    sim.sim.faults.set({"twilio-sms": {"outage": "hang"}})
    url = f"{sim.url}/2010-04-01/Accounts/{sim.sim.config.account_sid}/Messages.json"
    async with aiohttp.ClientSession(headers=AUTH_HEADER) as http:
        with pytest.raises(asyncio.TimeoutError):
            await http.post(url, data={"To": "+821040000007", "From": FROM, "Body": "hi"},
                            timeout=aiohttp.ClientTimeout(total=0.5))
        await asyncio.sleep(0.3)  # the simulator notices the client gave up
    assert not sim.sim.twilio.messages


async def test_callbacks_duplicated_three_times_and_delayed(sim, async_twilio_client, gateway):
    sim.sim.faults.set({"twilio-sms": {"duplicate_callbacks": 1.0, "duplicate_times": 3, "callback_delay_s": 0.3}})
    started = time.monotonic()
    await async_twilio_client.messages.create_async(
        to="+821040000008", from_=FROM, body="hi", status_callback=f"{gateway.url}{STATUS}")
    hits = await wait_for(lambda: len(gateway.at(STATUS)) >= 6 and gateway.at(STATUS))
    assert time.monotonic() - started >= 0.3
    assert [h.form["MessageStatus"] for h in hits] == ["sent"] * 3 + ["delivered"] * 3
    for bad in ({"duplicate_times": 1}, {"callback_delay_s": -1}, {"unwritable": "yes"}):
        with pytest.raises(ValueError):
            sim.sim.faults.set({"twilio-sms": bad})
