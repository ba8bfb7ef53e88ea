"""Push: what FCM and Web Push answers mean for a resident, and the clients against the simulator."""

from __future__ import annotations

import base64
import os
import time
from types import SimpleNamespace

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from channels import fcm, webpush
from channels.base import Message
from channels.fcm import Fcm
from channels.push import ACK_TOKEN, _push_leg, fcm_message, notification, ttl_s
from channels.webpush import WebPush, generate_keys
from gateway.crypto import Vault
from simulator import SimConfig, simulator_of, start


def message(**extra) -> Message:
    fields = {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다.", "instruction": "물을 자주 드세요.",
              "page_url": "http://gw/m/al_0123456789abcdef.AbCdEfGhIjKl", **extra}
    return Message("al_0123456789abcdef", "r1", 0, 0, "ko", "Heat wave", "Severe", "Immediate", **fields)


def fcm_error(status: int, code: str, text: str = "") -> dict:
    return {"error": {"code": status, "message": text, "status": "X",
                      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}}


# What answers mean -----------------------------------------------------------

def test_an_uninstalled_app_kills_the_token_and_falls_back_at_once():
    out = fcm.failure(404, fcm_error(404, "UNREGISTERED"))
    assert (out.status, out.permanent, out.contact_dead, out.error_code) == ("failed", True, True, "UNREGISTERED")


def test_a_malformed_token_is_dead_but_a_bad_payload_is_only_our_fault():
    assert fcm.failure(400, fcm_error(400, "INVALID_ARGUMENT", "The registration token is not valid")).contact_dead
    bad_payload = fcm.failure(400, fcm_error(400, "INVALID_ARGUMENT", "Message is too big"))
    assert bad_payload.permanent and not bad_payload.contact_dead


@pytest.mark.parametrize("status,code", [(429, "QUOTA_EXCEEDED"), (503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_an_overloaded_fcm_is_tried_again(status, code):
    out = fcm.failure(status, fcm_error(status, code))
    assert not out.permanent and not out.contact_dead


@pytest.mark.parametrize("status", [404, 410])
def test_an_expired_browser_subscription_is_dead(status):
    out = webpush.failure(status, "gone")
    assert out.permanent and out.contact_dead


@pytest.mark.parametrize("status,permanent", [(429, False), (500, False), (503, False), (413, True), (403, True)])
def test_web_push_errors_retry_only_when_the_service_is_busy(status, permanent):
    out = webpush.failure(status, "")
    assert out.permanent is permanent and not out.contact_dead


# What the resident sees ------------------------------------------------------

def test_notification_is_in_the_resident_language_and_says_a_tap_confirms():
    title, body = notification(message())
    assert title == "[긴급재난] 폭염 경보"
    assert "38도" in body and "물을 자주" in body and "알림을 눌러" in body


def test_a_long_alert_is_cut_to_fit_the_4_kib_push_limit():
    title, body = notification(message(headline="경보" * 300, body="아주 긴 본문입니다. " * 500))
    payload = fcm_message("tok", title, body, {"ack": "a", "alert": "al_1", "url": "u", "lang": "ko"}, 3600)
    size = len(orjson.dumps({"data": payload["data"], "notification": payload["notification"]}))
    assert size <= 4096 and body.endswith("…")


def test_the_notification_lives_as_long_as_the_alert():
    assert ttl_s(message(), 3600) == 3600
    assert 590 <= ttl_s(message(expires_at=time.time() + 600), 3600) <= 600
    assert ttl_s(message(expires_at=time.time() - 5), 3600) == 0


def test_fcm_message_is_high_priority_with_the_acknowledgement_token():
    m = fcm_message("tok", "t", "b", {"ack": "al_1.x", "alert": "al_1"}, 120)
    assert m["android"]["priority"] == "high" and m["android"]["ttl"] == "120s"
    assert m["apns"]["headers"]["apns-priority"] == "10"
    assert m["data"]["ack"] == "al_1.x"


def test_acknowledgement_tokens_look_like_page_tokens_and_nothing_else():
    vault = Vault(bytes(32), bytes(32))
    sealed = vault.link_token("al_0123456789abcdef", "r000123")
    assert ACK_TOKEN.fullmatch(f"al_0123456789abcdef.{sealed}")
    assert ACK_TOKEN.fullmatch(f"al_1.{vault.link_token('al_1', 'r' * 64)}")
    for bad in ("al_1", "al_1.short", f"../../x.{sealed}", f"al 1.{sealed}", f"a.b.{sealed}"):
        assert not ACK_TOKEN.fullmatch(bad), bad


def test_an_acknowledgement_counts_for_the_latest_push_leg_sent():
    plan = [{"l": [["push", 0], ["sms", 1]]}, {"l": [["voice", 1]]}, {"l": [["push", 2]]}]
    assert _push_leg(plan, 1) == (0, 0, 0)
    assert _push_leg(plan, 2) == (2, 0, 2)
    assert _push_leg([{"l": [["sms", 0]]}], 0) is None


# The clients against the simulator -------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
async def sim(tmp_path):
    config = SimConfig(port=0, time_scale=0.01, fcm_service_account=str(tmp_path / "sa.json"))
    runner, port = await start(config)
    yield simulator_of(runner), port, config
    await runner.cleanup()


def settings(tmp_path, port: int):
    private, _ = generate_keys()
    return SimpleNamespace(fcm_service_account=str(tmp_path / "sa.json"), fcm_base=f"http://127.0.0.1:{port}",
                           vapid_private_key=base64.urlsafe_b64decode(private + "="),
                           vapid_subject="mailto:alerts@localhost")


async def test_fcm_client_sends_and_gets_a_new_token_when_the_old_one_is_refused(sim, tmp_path):
    simulator, port, config = sim
    simulator.behaviour.add({"resident": "r1", "fcm_tokens": ["tok-r1-0123456789"]})
    client = Fcm(settings(tmp_path, port))
    title, body = notification(message())
    first = await client.send(fcm_message("tok-r1-0123456789", title, body, {"ack": "a", "alert": "al_1"}, 60))
    assert first.status == "sent" and first.ref.startswith("projects/sim-alerts/messages/")
    # The bearer token still looks fresh to us, but the token service no longer knows it.
    client._credentials.token = "ya29.revoked"
    second = await client.send(fcm_message("tok-r1-0123456789", title, body, {"ack": "a", "alert": "al_1"}, 60))
    assert second.status == "sent"
    await client.close()


async def test_fcm_client_reports_an_unreachable_token_service_as_temporary(tmp_path):
    account = tmp_path / "sa.json"
    from simulator.push import make_service_account

    make_service_account(account, "http://127.0.0.1:9/token")
    client = Fcm(SimpleNamespace(fcm_service_account=str(account), fcm_base="http://127.0.0.1:9"))
    out = await client.send(fcm_message("tok", "t", "b", {"ack": "a", "alert": "al_1"}, 60))
    assert out.status == "failed" and not out.permanent and out.error_code == "auth"
    await client.close()


async def test_web_push_client_encrypts_for_the_browser_and_signs_with_vapid(sim, tmp_path):
    simulator, port, _ = sim
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    endpoint = f"http://127.0.0.1:{port}/wp/sub-1"
    simulator.behaviour.add({"resident": "r2", "webpush_endpoints": [endpoint], "webpush_keys": {endpoint: {
        "private_key": _b64(key.private_numbers().private_value.to_bytes(32, "big")), "auth": _b64(auth)}}})
    subscription = {"endpoint": endpoint, "keys": {
        "p256dh": _b64(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
        "auth": _b64(auth)}}
    client = WebPush(settings(tmp_path, port))
    out = await client.send(subscription, orjson.dumps({"title": "폭염 경보", "ack": "al_1.tok"}), ttl=600,
                            topic="al-1")
    assert out.status == "sent" and out.ref
    [record] = simulator.records.for_resident("r2")
    assert record["payload"] == {"title": "폭염 경보", "ack": "al_1.tok"}
    assert (record["ttl"], record["urgency"]) == (600, "high")
    await client.close()


async def test_a_subscription_with_impossible_keys_is_dead_without_a_request(tmp_path):
    client = WebPush(settings(tmp_path, 9))
    out = await client.send({"endpoint": "http://127.0.0.1:9/wp/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
                            b"{}", ttl=60)
    assert out.status == "failed" and out.contact_dead
    await client.close()
