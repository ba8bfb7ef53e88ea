"""An agency hears of every delivery and of each alert's progress, signed, in order, even through failures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import orjson
import pytest
from aiohttp import web
from capkit import (
    FLOOD_CENTRE,
    JONGNO_INSIDE,
    answers_sms,
    call,
    cap_doc,
    feature_phone,
    now_kst,
    placed,
    post_cap,
)
from stackkit import free_port

from gateway import callbacks

pytestmark = pytest.mark.e2e

SECRET = "s3cret-for-the-jongno-office"


# The verification recipe, exactly as the README gives it to agencies.
def verify(secret: str, headers, body: bytes, tolerance_s: int = 300) -> bool:
    """True if a POST from the gateway is genuine and fresh. `body` is the raw request body."""
    timestamp = headers["X-Gateway-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # too old: a replay
    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in headers["X-Gateway-Signature"].split(","))


class Receiver:
    """The agency's endpoint: fails the first `failures` POSTs (or all, while `down`), keeps the rest."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.down = False
        self.tries = 0
        self.accepted: list[tuple[dict, bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.tries += 1
        if self.down or self.tries <= self.failures:
            return web.Response(status=503)
        self.accepted.append((dict(request.headers), body))
        return web.Response(status=204)

    def events(self) -> list[dict]:
        """Every event accepted, first copy of each, in the order they came."""
        seen, out = set(), []
        for _, body in self.accepted:
            for event in orjson.loads(body)["events"]:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    out.append(event)
        return out

    def finals(self) -> list[dict]:
        return [e for e in self.events() if e["type"] == "alert.final"]


@pytest.fixture
async def receiver():
    r = Receiver()
    app = web.Application()
    app.router.add_post("/gateway-events", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    r.url = f"http://127.0.0.1:{port}/gateway-events"
    yield r
    await runner.cleanup()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(callbacks, "BACKOFF_BASE_S", 0.2)
    monkeypatch.setattr(callbacks, "PROGRESS_EVERY_S", 0.5)


async def until(predicate, timeout: float = 40, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def register(city, url: str, secret: str | None = SECRET) -> dict:
    status, body = await call(city, "PUT", "/v1/agency/callback",
                              json={"url": url, **({"secret": secret} if secret else {})})
    assert status == 200, body
    return body


async def three_residents(city) -> None:
    await city.add(placed("a", JONGNO_INSIDE, feature_phone("+821055610001")), answers_sms("+821055610001"))
    await city.add(placed("b", JONGNO_INSIDE, feature_phone("+821055610002")), answers_sms("+821055610002"))
    await city.add(placed("no-phone", JONGNO_INSIDE))


HEAT = {"event": "Heat wave", "severity": "Moderate",
        "content": {"ko": {"headline": "폭염 주의보", "body": "물을 자주 드세요."}},
        "audience": {"districts": ["11110"]}, "policy": {"step_timeouts": {"sms": 3}}}


async def test_callbacks_are_signed_and_verifiable_with_the_documented_recipe(city, receiver):
    await register(city, receiver.url)
    await three_residents(city)
    aid = await city.post_alert(HEAT)
    await until(lambda: receiver.finals(), what="the final summary")
    for headers, body in receiver.accepted:
        assert verify(SECRET, headers, body)
        assert not verify("another-secret-entirely", headers, body)
        assert not verify(SECRET, headers, body + b" ")
    events = receiver.events()
    deliveries = {e["resident"]: e for e in events if e["type"] == "delivery"}
    assert set(deliveries) == {"a", "b", "no-phone"}
    assert deliveries["a"]["state"] == "confirmed"
    assert deliveries["a"]["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert deliveries["no-phone"]["state"] == "unreachable"
    assert deliveries["no-phone"]["reasons"][0]["reason"].startswith("no contact point")
    assert all(e["alert"] == aid for e in events)
    assert events[-1]["type"] == "alert.final" and events[-1]["summary"]["deliveries"]["confirmed"] == 2


async def test_a_receiver_that_fails_three_times_still_gets_every_event_in_order(city, receiver):
    receiver.failures = 3
    await register(city, receiver.url)
    # "quick" confirms, is told again by the update round; the others end before it.
    await city.add(placed("quick", (FLOOD_CENTRE[0] + 0.01, FLOOD_CENTRE[1]), feature_phone("+821055620001"),
                          district="26260", languages=("en",)), answers_sms("+821055620001"))
    await city.add(placed("silent", (FLOOD_CENTRE[0] + 0.02, FLOOD_CENTRE[1]), feature_phone("+821055620002"),
                          district="26260", languages=("en",)), answers_sms("+821055620002", reply=None))
    await city.add(placed("nobody", (FLOOD_CENTRE[0] - 0.01, FLOOD_CENTRE[1]), district="26260"))
    sent = now_kst()
    status, body = await post_cap(city, cap_doc("flood_circle.xml", sent=sent),
                                  {"step_timeouts": {"sms": 2, "voice": 2}})
    assert status == 202, body
    aid = body["id"]
    await until(lambda: any(e.get("resident") == "quick" for e in receiver.events()), what="quick's delivery")
    update = cap_doc("flood_update.xml", references=[("flood@busan.example.go.kr", "KR.BUSAN.FLOOD.0001", sent)])
    status, _ = await post_cap(city, update)
    assert status == 202
    await until(lambda: len(receiver.finals()) >= 2, timeout=60, what="both final summaries")

    assert receiver.tries > 3 and len(receiver.accepted) >= 1
    events = receiver.events()
    for headers, body in receiver.accepted:
        assert verify(SECRET, headers, body)
    parent = [e for e in events if e["type"] == "delivery" and "update_round" not in e]
    rounds = [e for e in events if e["type"] == "delivery" and "update_round" in e]
    assert sorted(e["resident"] for e in parent) == ["nobody", "quick", "silent"]  # each exactly once
    assert [e["resident"] for e in rounds] == ["quick"]
    # In order per delivery: quick's first delivery before the round's.
    ids = [e["id"] for e in events]
    first = next(e for e in parent if e["resident"] == "quick")
    assert ids.index(first["id"]) < ids.index(rounds[0]["id"])
    # Each alert's events arrive in the order they happened, its final summary last.
    for alert_events in ([e for e in events if "update_round" not in e], [e for e in events if "update_round" in e]):
        order = [tuple(int(x) for x in e["id"].split("/")[1].split("-")) for e in alert_events]
        assert order == sorted(order)
        assert alert_events[-1]["type"] == "alert.final"
    assert all(e["alert"] == aid for e in events)


async def test_progress_summaries_come_while_the_alert_runs(city, receiver):
    await register(city, receiver.url)
    await city.add(placed("slow", JONGNO_INSIDE, feature_phone("+821055630001")),
                   {**answers_sms("+821055630001", reply=None), "voice": {"answer": "no-answer"}})
    await city.post_alert({**HEAT, "severity": "Severe", "policy": {"step_timeouts": {"sms": 2, "voice": 2}}})
    await until(lambda: receiver.finals(), timeout=60, what="the final summary")
    kinds = [e["type"] for e in receiver.events()]
    assert "alert.progress" in kinds and kinds[-1] == "alert.final"


async def test_failed_batches_become_dead_letters_the_agency_can_replay(city, receiver, monkeypatch):
    monkeypatch.setattr(callbacks, "MAX_ATTEMPTS", 2)
    receiver.down = True
    await register(city, receiver.url)
    await three_residents(city)
    await city.post_alert(HEAT)

    async def dead() -> list[dict]:
        return (await call(city, "GET", "/v1/agency/callbacks/dead"))[1]["dead_letters"]

    deadline = time.monotonic() + 40
    letters = []
    while time.monotonic() < deadline:
        letters = await dead()
        if any(e["type"] == "alert.final" for letter in letters for e in letter["events"]):
            break
        await asyncio.sleep(0.2)
    assert letters and all(letter["attempts"] == 2 and letter["last_error"] == "HTTP 503" for letter in letters)
    assert receiver.accepted == []
    receiver.down = False
    status, result = await call(city, "POST", "/v1/agency/callbacks/dead/replay", json={})
    assert status == 200 and result["failed"] == 0 and result["replayed"] == len(letters), result
    assert await dead() == []
    residents = {e["resident"] for e in receiver.events() if e["type"] == "delivery"}
    assert residents == {"a", "b", "no-phone"}
    assert all(verify(SECRET, h, b) for h, b in receiver.accepted)


async def test_registering_a_callback(city, receiver):
    status, problem = await call(city, "PUT", "/v1/agency/callback", json={"url": "ftp://example.org/x"})
    assert status == 422 and problem["errors"][0]["field"] == "/url"
    # Nothing inside the city's network but what the operator allows (here loopback, for the receiver).
    for url, why in [("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a public address"),
                     ("http://10.0.0.7:6379/", "10.0.0.7 is not a public address"),
                     ("http://[::1]:8080/hook", "::1 is not a public address")]:
        status, problem = await call(city, "PUT", "/v1/agency/callback", json={"url": url})
        assert status == 422 and problem["errors"][0]["field"] == "/url"
        assert why in problem["errors"][0]["detail"]
    assert (await call(city, "GET", "/v1/agency"))[1]["callback"] is None
    status, problem = await call(city, "PUT", "/v1/agency/callback", json={"url": receiver.url, "secret": "short"})
    assert status == 422 and problem["errors"][0]["field"] == "/secret"
    made = await register(city, receiver.url, secret=None)
    assert made["secret"].startswith("whsec_")  # shown this once
    _, me = await call(city, "GET", "/v1/agency")
    assert me["callback"] == {"url": receiver.url}
    status, _ = await call(city, "DELETE", "/v1/agency/callback")
    assert status == 204
    assert (await call(city, "GET", "/v1/agency"))[1]["callback"] is None
