"""Webhooks carry Twilio's signature, so the gateway's RequestValidator can trust them."""

from __future__ import annotations

import socket

from multidict import MultiDict
from simkit import AUTH_TOKEN, FROM, VALIDATOR, wait_for

from simulator import SimConfig, simulator_of, start
from simulator.callbacks import signature

CALLBACK = "/hooks/twilio/sms/status"


async def a_signed_callback(sim, client, gateway):
    await client.messages.create_async(
        to="+821030000001", from_=FROM, body="경보 Ünïcödé", status_callback=f"{gateway.url}{CALLBACK}?alert=a1&step=2"
    )
    [hit] = await wait_for(lambda: gateway.at(CALLBACK)[:1])
    return hit


async def test_the_request_validator_accepts_the_simulators_callbacks(sim, async_twilio_client, gateway):
    hit = await a_signed_callback(sim, async_twilio_client, gateway)
    assert hit.url.endswith("?alert=a1&step=2")
    assert VALIDATOR.validate(hit.url, hit.form, hit.signature)
    assert hit.headers["User-Agent"].startswith("TwilioProxy/")


async def test_a_tampered_body_url_or_signature_is_rejected(sim, async_twilio_client, gateway):
    hit = await a_signed_callback(sim, async_twilio_client, gateway)
    tampered_body = MultiDict(hit.form)
    tampered_body["MessageStatus"] = "delivered" if hit.form["MessageStatus"] != "delivered" else "sent"
    assert not VALIDATOR.validate(hit.url, tampered_body, hit.signature)
    extra_field = MultiDict(hit.form, ErrorCode="30003")
    assert not VALIDATOR.validate(hit.url, extra_field, hit.signature)
    assert not VALIDATOR.validate(hit.url.replace("step=2", "step=3"), hit.form, hit.signature)
    assert not VALIDATOR.validate(hit.url.replace(CALLBACK, "/hooks/other"), hit.form, hit.signature)
    forged = ("A" if hit.signature[0] != "A" else "B") + hit.signature[1:]
    assert not VALIDATOR.validate(hit.url, hit.form, forged)
    assert not VALIDATOR.validate(hit.url, hit.form, signature("another-token", hit.url, dict(hit.form)))


async def test_get_callbacks_sign_the_url_with_its_query(sim, async_twilio_client, gateway):
    gateway.twiml["/twiml"] = "<Response><Say>hello</Say></Response>"
    await async_twilio_client.calls.create_async(
        to="+821030000002", from_=FROM, url=f"{gateway.url}/twiml", method="GET",
        status_callback=f"{gateway.url}/status", status_callback_method="GET",
    )
    [status] = await wait_for(lambda: gateway.at("/status"))
    [fetch] = gateway.at("/twiml")
    for hit in (status, fetch):
        assert hit.method == "GET" and hit.query_param("CallSid") and not hit.form
        assert VALIDATOR.validate(hit.url, {}, hit.signature)
    assert status.query_param("CallStatus") == "completed"


def test_signature_matches_twilios_own_computation():
    params = {"Body": "폭염 경보", "To": "+821012345678", "From": FROM, "MessageSid": "SM" + "a" * 32}
    url = "https://gateway.example/hooks/twilio/sms/inbound?x=1"
    assert signature(AUTH_TOKEN, url, params) == VALIDATOR.compute_signature(url, params)


async def test_an_unreachable_gateway_is_retried_then_given_up():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = SimConfig(port=0, gateway_url=f"http://127.0.0.1:{closed_port}", time_scale=0.01, callback_tries=3)
    runner, _ = await start(config)
    sim = simulator_of(runner)
    try:
        delivered = await sim.callbacks.deliver(f"{config.gateway_url}/hooks/x", {"A": "1"})
        assert delivered is False
        assert sim.stats["callbacks.failed"] == 3 and sim.stats["callbacks.retried"] == 2
        assert sim.stats["callbacks.gave_up"] == 1 and sim.records.lost_callbacks[0]["tries"] == 3
    finally:
        await runner.cleanup()
