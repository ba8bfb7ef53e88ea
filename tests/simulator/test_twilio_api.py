"""The simulator answers the real twilio library exactly as Twilio's spec says."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import jsonschema
import orjson
import pytest
import twilio_spec
from simkit import ACCOUNT_SID, AUTH_HEADER, FROM, in_thread, wait_for
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

KOREAN_MOBILE = "+821012345678"


def check_all_seen(seen: list[tuple[str, str, int, str]]) -> None:
    """Every answer the library saw fits the spec (or Twilio's error shape)."""
    assert seen
    for method, url, status, text in seen:
        body = orjson.loads(text)
        if status >= 400:
            twilio_spec.validate_error(body, status)
        else:
            twilio_spec.validate_response(twilio_spec.spec_path(urlsplit(url).path), method, status, body)


def check_all_sent(sim) -> None:
    """Every create the simulator received is a request the spec accepts."""
    posts = [r for r in sim.requests if r["method"] == "POST"]
    assert posts
    for entry in posts:
        twilio_spec.validate_form(twilio_spec.spec_path(entry["path"]), entry["fields"])


async def test_message_create_fetch_and_list_match_the_spec(sim, twilio_client, gateway):
    message = await in_thread(
        twilio_client.messages.create,
        to=KOREAN_MOBILE, from_=FROM, body="폭염 경보: 물을 자주 드세요.", status_callback=f"{gateway.url}/cb/sms",
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued" and message.num_segments == "1" and message.price is None
    fetched = await in_thread(twilio_client.messages(message.sid).fetch)
    assert fetched.sid == message.sid and fetched.to == KOREAN_MOBILE
    listed = await in_thread(twilio_client.messages.list, to=KOREAN_MOBILE, limit=5)
    assert [m.sid for m in listed] == [message.sid]
    check_all_seen(twilio_client.http_client.seen)
    check_all_sent(sim.sim)


async def test_async_client_creates_messages_and_calls_that_match_the_spec(sim, async_twilio_client, gateway):
    message = await async_twilio_client.messages.create_async(
        to=KOREAN_MOBILE, from_=FROM, body="x" * 200, status_callback=f"{gateway.url}/cb/sms",
    )
    assert message.num_segments == "2"
    call = await async_twilio_client.calls.create_async(
        to=KOREAN_MOBILE, from_=FROM, url=f"{gateway.url}/twiml",
        status_callback=f"{gateway.url}/cb/call", status_callback_event=["initiated", "ringing", "answered", "completed"],
        machine_detection="Enable", timeout=30,
    )
    assert call.sid.startswith("CA") and call.status == "queued" and call.direction == "outbound-api"
    await async_twilio_client.calls(call.sid).fetch_async()
    await async_twilio_client.messages(message.sid).fetch_async()
    await async_twilio_client.calls.list_async(to=KOREAN_MOBILE)
    check_all_seen(async_twilio_client.http_client.seen)
    check_all_sent(sim.sim)
    sent = next(r for r in sim.sim.requests if r["path"].endswith("Calls.json"))
    assert [v for k, v in sent["fields"] if k == "StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


async def test_the_spec_check_catches_a_missing_field_a_wrong_type_or_a_bad_date(sim, twilio_client):
    await in_thread(twilio_client.messages.create, to=KOREAN_MOBILE, from_=FROM, body="hi")
    path = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
    good = orjson.loads(twilio_client.http_client.seen[-1][3])
    twilio_spec.validate_response(path, "post", 201, good)
    without_uri = {k: v for k, v in good.items() if k != "uri"}
    for bad in (without_uri, {**good, "num_segments": 1}, {**good, "date_created": "2026-11-21T09:00:00Z"},
                {**good, "status": "lost"}, {**good, "sid": "XX" + good["sid"][2:]}):
        with pytest.raises(jsonschema.ValidationError):
            twilio_spec.validate_response(path, "post", 201, bad)
    with pytest.raises(jsonschema.ValidationError):
        twilio_spec.validate_form("/2010-04-01/Accounts/{AccountSid}/Calls.json",
                                  [["To", KOREAN_MOBILE], ["From", FROM], ["MachineDetection", "Sometimes"]])


async def test_a_finished_call_still_matches_the_spec(sim, twilio_client, gateway):
    gateway.twiml["/twiml"] = "<Response><Say>Hello</Say></Response>"
    call = await in_thread(twilio_client.calls.create, to=KOREAN_MOBILE, from_=FROM, url=f"{gateway.url}/twiml")
    await wait_for(lambda: sim.sim.twilio.calls[call.sid]["status"] == "completed")
    done = await in_thread(twilio_client.calls(call.sid).fetch)
    assert done.status == "completed" and int(done.duration) >= 1 and done.end_time is not None
    check_all_seen(twilio_client.http_client.seen)


async def test_wrong_credentials_get_401_with_error_20003(sim):
    client = Client(ACCOUNT_SID, "wrong-token")
    client.api.base_url = sim.url
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(client.messages.create, to=KOREAN_MOBILE, from_=FROM, body="hi")
    assert caught.value.status == 401 and caught.value.code == 20003
    assert not sim.sim.twilio.messages


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"From": FROM, "Body": "hi"}, 21604),
        ({"To": "010-1234-5678", "From": FROM, "Body": "hi"}, 21211),
        ({"To": KOREAN_MOBILE, "From": FROM}, 21602),
        ({"To": KOREAN_MOBILE, "Body": "hi"}, 21603),
        ({"To": KOREAN_MOBILE, "From": FROM, "Body": "x" * 1601}, 21617),
    ],
)
async def test_bad_messages_get_twilio_errors(sim, fields, code):
    async with aiohttp.ClientSession(headers=AUTH_HEADER) as http:
        async with http.post(f"{sim.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=fields) as resp:
            body = await resp.json()
    assert resp.status == 400 and body["code"] == code
    twilio_spec.validate_error(body, 400)
    assert not sim.sim.twilio.messages and not len(sim.sim.records)


async def test_a_bad_to_number_is_21211_through_the_library(sim, twilio_client):
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(twilio_client.messages.create, to="01012345678", from_=FROM, body="hi")
    assert caught.value.code == 21211 and caught.value.status == 400


async def test_sms_to_a_known_landline_is_refused_with_21614(sim, twilio_client):
    sim.sim.behaviour.add(
        {"resident": "r-landline", "phones": ["+82221234567"], "sms": {"outcome": "undelivered", "error_code": 21614}}
    )
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(twilio_client.messages.create, to="+82221234567", from_=FROM, body="hi")
    assert caught.value.code == 21614


async def test_a_call_without_a_valid_url_is_21205(sim, twilio_client):
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(twilio_client.calls.create, to=KOREAN_MOBILE, from_=FROM, url="not a url")
    assert caught.value.code == 21205


async def test_unknown_sid_is_404(sim, twilio_client):
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(twilio_client.messages("SM" + "0" * 32).fetch)
    assert caught.value.status == 404 and caught.value.code == 20404
