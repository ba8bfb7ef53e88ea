"""Push as the gateway sends it: google-auth + FCM HTTP v1, pywebpush + Web Push."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import google.auth.exceptions
import google.auth.transport.requests
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.oauth2 import service_account
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException, webpush_async

from simulator import SimConfig, simulator_of, start
from simulator.push import make_service_account

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
SEND = "/v1/projects/sim-alerts/messages:send"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _eventually(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
async def acks():
    """A stand-in gateway that keeps the acknowledgements the residents' apps send."""
    received: list[dict] = []

    async def ack(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/push/ack", ack)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    received_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield received, received_url
    await runner.cleanup()


@pytest.fixture
async def city(acks, tmp_path):
    _, gateway_url = acks
    config = SimConfig(port=0, gateway_url=gateway_url, time_scale=0.001, seed=3,
                       fcm_service_account=str(tmp_path / "fcm.json"))
    runner, port = await start(config)
    sim = simulator_of(runner)
    async with aiohttp.ClientSession() as http:
        yield sim, f"http://127.0.0.1:{port}", http
    await runner.cleanup()


def _subscribe(sim, url: str, resident: str, **push) -> dict:
    """A browser subscribing: its own P-256 key pair and auth secret, known to the simulator."""
    key, auth = ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef"
    endpoint = f"{url}/wp/{resident}-sub"
    sim.behaviour.add({
        "resident": resident, "webpush_endpoints": [endpoint], "understands": ["ko"],
        "push": {"token_state": "valid", "ack": True, "ack_after_s": 10, **push},
        "webpush_keys": {endpoint: {"private_key": _b64(key.private_numbers().private_value.to_bytes(32, "big")),
                                    "auth": _b64(auth)}},
    })
    p256dh = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "keys": {"p256dh": _b64(p256dh), "auth": _b64(auth)}}


def _vapid() -> Vapid02:
    vapid = Vapid02()
    vapid.generate_keys()
    return vapid


ALERT = {"title": "폭염 경보", "body": "야외 활동을 자제하세요", "lang": "ko", "ack": "ack-7f3a"}


async def _web_push(subscription: dict, http, **extra):
    """The alert sent as a browser's push service gets it from pywebpush, VAPID-signed."""
    return await webpush_async(subscription, json.dumps(ALERT), vapid_private_key=_vapid(),
                               vapid_claims={"sub": "mailto:ops@example.org"}, aiohttp_session=http,
                               **{"ttl": 60, **extra})


async def _refusal(subscription: dict, http) -> int:
    """The status a push service refuses the alert with."""
    with pytest.raises(WebPushException) as refused:
        await _web_push(subscription, http)
    return refused.value.response.status


async def test_a_web_push_is_decrypted_recorded_and_the_resident_acknowledges(city, acks):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000001")
    response = await _web_push(subscription, http, ttl=3600, headers={"Urgency": "high"})
    assert response.status == 201 and response.headers["Location"].startswith(f"{url}/wp/messages/")
    [entry] = sim.records.for_resident("r000001")
    assert entry["provider"] == "webpush" and entry["payload"] == ALERT and entry["urgency"] == "high"
    await _eventually(lambda: acks[0])
    assert acks[0] == [{"token": "ack-7f3a"}] and entry["status"] == "acknowledged"


async def test_vapid_signed_with_another_key_is_refused(city):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000002")
    signed = _vapid().sign({"sub": "mailto:ops@example.org", "aud": url, "exp": int(time.time()) + 3600})
    other = _b64(_vapid().public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    forged = {"Authorization": signed["Authorization"].rsplit("k=", 1)[0] + f"k={other}"}
    response = await WebPusher(subscription, aiohttp_session=http).send_async(json.dumps(ALERT), forged, ttl=60)
    assert response.status == 403 and "Signature verification failed" in await response.text()
    unsigned = await WebPusher(subscription, aiohttp_session=http).send_async(json.dumps(ALERT), {}, ttl=60)
    assert unsigned.status == 401
    assert sim.records.for_resident("r000002") == []


async def test_vapid_for_another_push_service_is_refused(city):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000003")
    with pytest.raises(WebPushException) as refused:
        await webpush_async(subscription, json.dumps(ALERT), vapid_private_key=_vapid(), ttl=60,
                            vapid_claims={"sub": "mailto:ops@example.org", "aud": "https://fcm.googleapis.com"},
                            aiohttp_session=http)
    assert refused.value.response.status == 403


async def test_a_stale_subscription_is_gone(city):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000004", token_state="stale")
    assert await _refusal(subscription, http) == 410


async def test_a_payload_encrypted_for_another_browser_is_refused(city):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000005")
    stranger = _subscribe(sim, url, "r000006")
    mixed_up = {"endpoint": subscription["endpoint"], "keys": stranger["keys"]}
    assert await _refusal(mixed_up, http) == 400


async def test_a_web_push_without_ttl_is_refused(city):
    sim, url, http = city
    subscription = _subscribe(sim, url, "r000007")
    headers = _vapid().sign({"sub": "mailto:ops@example.org", "aud": url, "exp": int(time.time()) + 3600})
    async with http.post(subscription["endpoint"], headers=headers) as response:
        assert response.status == 400


def _credentials(path) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(str(path), scopes=[FCM_SCOPE])


async def _bearer(path) -> str:
    # google-auth is synchronous: refresh in a thread so the simulator's loop can answer it.
    credentials = _credentials(path)
    await asyncio.to_thread(credentials.refresh, google.auth.transport.requests.Request())
    return credentials.token


def _fcm_resident(sim, resident: str, token: str, **push) -> None:
    sim.behaviour.add({"resident": resident, "fcm_tokens": [token], "understands": ["ko"],
                       "push": {"token_state": "valid", "ack": True, "ack_after_s": 10, **push}})


def _message(token: str, **data: str) -> dict:
    return {"message": {"token": token, "data": {"ack": "ack-1", **data},
                        "notification": {"title": "폭염 경보", "body": "야외 활동을 자제하세요"},
                        "android": {"priority": "high", "ttl": "3600s"}}}


async def test_fcm_send_with_google_auth_credentials_is_accepted_and_acknowledged(city, acks):
    sim, url, http = city
    token = "dGVzdC10b2tlbi0x:APA91bSIMULATED"
    _fcm_resident(sim, "r000010", token)
    bearer = await _bearer(sim.config.fcm_service_account)
    async with http.post(url + SEND, json=_message(token), headers={"Authorization": f"Bearer {bearer}"}) as resp:
        assert resp.status == 200
        name = (await resp.json())["name"]
    assert name.startswith("projects/sim-alerts/messages/")
    [entry] = sim.records.for_resident("r000010")
    assert entry["ref"] == name and entry["payload"]["title"] == "폭염 경보"
    await _eventually(lambda: acks[0])
    assert acks[0] == [{"token": "ack-1"}]


async def test_fcm_answers_unregistered_for_a_stale_token(city):
    sim, url, http = city
    token = "c3RhbGUtdG9rZW4:APA91bSTALE"
    _fcm_resident(sim, "r000011", token, token_state="stale")
    bearer = await _bearer(sim.config.fcm_service_account)
    async with http.post(url + SEND, json=_message(token), headers={"Authorization": f"Bearer {bearer}"}) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]
    assert error["status"] == "NOT_FOUND" and error["details"][0]["errorCode"] == "UNREGISTERED"


async def test_fcm_refuses_a_bad_bearer_and_a_malformed_message(city):
    sim, url, http = city
    token = "bWFsZm9ybWVk:APA91bMALFORMED"
    _fcm_resident(sim, "r000012", token)
    async with http.post(url + SEND, json=_message(token), headers={"Authorization": "Bearer ya29.nope"}) as resp:
        assert resp.status == 401
    bearer = {"Authorization": f"Bearer {await _bearer(sim.config.fcm_service_account)}"}
    bad = _message(token)
    bad["message"]["data"]["count"] = 3  # FCM data values must be strings
    async with http.post(url + SEND, json=bad, headers=bearer) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["details"][0]["errorCode"] == "INVALID_ARGUMENT"
    assert sim.records.for_resident("r000012") == []


async def test_a_service_account_the_simulator_did_not_issue_gets_no_token(city, tmp_path):
    sim, url, _ = city
    stranger = tmp_path / "stranger.json"
    make_service_account(stranger, f"{url}/token")
    with pytest.raises(google.auth.exceptions.RefreshError):
        await asyncio.to_thread(_credentials(stranger).refresh, google.auth.transport.requests.Request())


async def test_outages_rate_limits_and_dropped_connections_come_from_faults(city):
    sim, url, http = city
    token = "ZmF1bHRz:APA91bFAULTS"
    _fcm_resident(sim, "r000013", token)
    bearer = {"Authorization": f"Bearer {await _bearer(sim.config.fcm_service_account)}"}
    sim.faults.set({"fcm": {"outage": "503"}})
    async with http.post(url + SEND, json=_message(token), headers=bearer) as resp:
        assert resp.status == 503 and "Retry-After" in resp.headers
    sim.faults.set({"fcm": {"rate_limit": 0}})
    async with http.post(url + SEND, json=_message(token), headers=bearer) as resp:
        assert resp.status == 429
        assert (await resp.json())["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    sim.faults.set({"webpush": {"outage": "reset"}})
    with pytest.raises(aiohttp.ClientError):
        await _web_push(_subscribe(sim, url, "r000014"), http)
    assert sim.records.for_resident("r000013") == sim.records.for_resident("r000014") == []
