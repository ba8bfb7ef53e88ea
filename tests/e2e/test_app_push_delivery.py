"""App push over the real stack: FCM HTTP v1 and Web Push against the simulator.

Push is never proof by itself: only the resident's tap (the app's
acknowledgement) confirms; a stale token falls back to SMS at once and the
contact point is marked dead.
"""

from __future__ import annotations

import base64
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

pytestmark = pytest.mark.e2e

# Long enough that "at once" cannot be the step timing out.
SLOW_PUSH = {"push": 30, "sms": 10, "voice": 10, "mail": 10}


def alert(rid: str, **policy) -> dict:
    return {
        "event": "Heat wave", "severity": "Moderate", "urgency": "Expected",
        "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다.",
                           "instruction": "물을 자주 드세요."},
                    "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today."}},
        "audience": {"residents": [rid]},
        "policy": {"step_timeouts": SLOW_PUSH, **policy},
    }


def resident(rid: str, *contacts) -> dict:
    return {"id": rid, "name": f"Resident {rid}", "languages": ["ko"], "district": "11110", "contacts": list(contacts)}


def fcm(rid: str) -> dict:
    return {"type": "fcm", "token": f"fcm:{rid}:APA91b-sim-token-0123456789"}


def phone(number: str) -> dict:
    return {"type": "phone", "number": number, "handset": "smartphone"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_subscription(sim_port: int, name: str) -> tuple[dict, dict]:
    """A Web Push subscription as a browser makes it, and the simulator's copy of its private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    endpoint = f"http://127.0.0.1:{sim_port}/wp/{name}"
    p256dh = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    contact = {"type": "webpush", "endpoint": endpoint, "keys": {"p256dh": _b64(p256dh), "auth": _b64(auth)}}
    private = key.private_numbers().private_value.to_bytes(32, "big")
    behaviour = {"webpush_endpoints": [endpoint],
                 "webpush_keys": {endpoint: {"private_key": _b64(private), "auth": _b64(auth)}}}
    return contact, behaviour


async def dead_contacts(city, rid: str) -> list[int]:
    return (await city.get(f"/v1/residents/{rid}"))["dead_contacts"]


async def texted_at_once(city, rid: str) -> dict:
    """The resident's path once a failed push moved on to a delivered SMS well
    inside the 30 s push step (at once, not after a timeout)."""
    started = time.monotonic()
    aid = await city.post_alert(alert(rid))
    await city.settled(aid, timeout=30)
    assert time.monotonic() - started < 15
    path = await city.path(aid, rid)
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    return path


async def test_app_user_who_taps_the_notification_is_confirmed_by_push_and_never_texted(city):
    contact = fcm("p1")
    await city.add(resident("p1", contact, phone("+821055510001")),
                   {"fcm_tokens": [contact["token"]], "phones": ["+821055510001"],
                    "push": {"ack": True, "ack_after_s": 20}})
    aid = await city.post_alert(alert("p1"))
    await city.settled(aid, timeout=30)
    path = await city.path(aid, "p1")
    assert path["state"] == "confirmed"
    assert path["confirmed_by"] == {"channel": "push", "level": "acknowledged"}
    statuses = [s["status"] for s in path["attempts"][0]["statuses"]]
    # Accepted by FCM is only `sent`; the tap is what confirms.
    assert "sent" in statuses and "delivered" not in statuses
    assert [r["channel"] for r in city.received("p1")] == ["push"]
    note = city.received("p1")[0]
    assert note["provider"] == "fcm" and note["priority"] == "high"
    assert "폭염 경보" in note["text"]


async def test_stale_app_token_falls_back_to_sms_at_once_and_is_marked_dead(city):
    contact = fcm("p2")
    await city.add(resident("p2", contact, phone("+821055510002")),
                   {"fcm_tokens": [contact["token"]], "phones": ["+821055510002"],
                    "push": {"token_state": "stale"}, "sms": {"outcome": "delivered"}})
    path = await texted_at_once(city, "p2")
    push = path["attempts"][0]
    assert push["channel"] == "push" and push["statuses"][-1] == {
        "status": "failed", "at_ms": push["statuses"][-1]["at_ms"], "error_code": "UNREGISTERED"}
    assert await dead_contacts(city, "p2") == [0]
    # The next alert does not try the dead token again.
    aid2 = await city.post_alert(alert("p2"))
    await city.settled(aid2, timeout=30)
    assert (await city.path(aid2, "p2"))["plan"][0]["channels"] == ["sms"]


async def test_browser_subscriber_who_taps_is_confirmed_by_web_push(city):
    contact, keys = browser_subscription(city.stack.sim_port, "wp-ok-1")
    await city.add(resident("w1", contact, phone("+821055510003")),
                   {**keys, "phones": ["+821055510003"], "push": {"ack": True, "ack_after_s": 20}})
    aid = await city.post_alert(alert("w1"))
    await city.settled(aid, timeout=30)
    path = await city.path(aid, "w1")
    assert path["confirmed_by"] == {"channel": "push", "level": "acknowledged"}
    received = city.received("w1")
    assert [r["channel"] for r in received] == ["push"]
    # The simulator decrypted the aes128gcm payload as the browser would.
    assert received[0]["provider"] == "webpush" and received[0]["urgency"] == "high"
    assert received[0]["payload"]["lang"] == "ko" and "폭염 경보" in received[0]["payload"]["title"]
    assert 0 < received[0]["ttl"] <= 3600


async def test_expired_browser_subscription_410_falls_back_to_sms_and_is_marked_dead(city):
    contact, keys = browser_subscription(city.stack.sim_port, "wp-gone-1")
    await city.add(resident("w2", contact, phone("+821055510004")),
                   {**keys, "phones": ["+821055510004"], "push": {"token_state": "stale"},
                    "sms": {"outcome": "delivered"}})
    path = await texted_at_once(city, "w2")
    assert path["attempts"][0]["statuses"][-1]["error_code"] == "410"
    assert await dead_contacts(city, "w2") == [0]


async def test_app_user_who_never_taps_falls_back_when_the_push_step_times_out(city):
    contact = fcm("p3")
    await city.add(resident("p3", contact, phone("+821055510005")),
                   {"fcm_tokens": [contact["token"]], "phones": ["+821055510005"], "push": {"ack": False}})
    aid = await city.post_alert(alert("p3", step_timeouts={**SLOW_PUSH, "push": 2}))
    await city.settled(aid, timeout=30)
    path = await city.path(aid, "p3")
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert [r["channel"] for r in city.received("p3")] == ["push", "sms"]
    assert await dead_contacts(city, "p3") == []


async def test_push_ack_endpoint_refuses_unknown_tokens_and_oversized_bodies(city):
    url = f"{city.api}/hooks/push/ack"
    for body in ({"token": "al_0000000000000000.not-a-real-token"}, {"token": "nonsense"}, {"token": 7}):
        async with city.http.post(url, json=body) as r:
            assert r.status == 404, body
    async with city.http.post(url, data=b"{" * 5000) as r:
        assert r.status == 413
    async with city.http.post(url, data=b"not json") as r:
        assert r.status == 400
