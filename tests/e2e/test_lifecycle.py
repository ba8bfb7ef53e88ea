"""After an alert is posted: cancel, expiry, update, drills and quiet hours, as residents live them.

Each test checks the simulator's records: after a cancel or an expiry no
step starts that should not, and after an update the next ones carry the new words.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from capkit import (
    FLOOD_CENTRE,
    JONGNO_INSIDE,
    KST,
    answers_sms,
    call,
    cap_doc,
    feature_phone,
    now_kst,
    placed,
    post_cap,
    texts,
)

from gateway import keys
from gateway.cap.parse import parse_cap
from gateway.engine import Engine
from gateway.lifecycle import Lifecycle

pytestmark = pytest.mark.e2e

HEAT_SENDER = "heat-alerts@seoul.example.go.kr"
FLOOD_SENDER = "flood@busan.example.go.kr"


async def until(predicate, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.1)


def km_north(km: float) -> tuple[float, float]:
    return FLOOD_CENTRE[0] + km / 111.195, FLOOD_CENTRE[1]


def cancel_of(sender: str, identifier: str, sent: datetime, new_id: str) -> bytes:
    doc = cap_doc("flood_cancel.xml", identifier=new_id, references=[(sender, identifier, sent)])
    return doc.replace(f"<sender>{FLOOD_SENDER}</sender>".encode(), f"<sender>{sender}</sender>".encode())


async def test_a_cap_cancel_stops_every_pending_step(city):
    # Severe needs an acknowledgement: she gets the SMS, never answers, and would be called next.
    await city.add(placed("silent", JONGNO_INSIDE, feature_phone("+821055540001")),
                   {**answers_sms("+821055540001", reply=None), "voice": {"answer": "human", "press": ["1"]}})
    sent = now_kst()
    status, body = await post_cap(city, cap_doc("ko_heatwave.xml", sent=sent),
                                  {"step_timeouts": {"sms": 3, "voice": 4}})
    assert status == 202, body
    aid = body["id"]
    await until(lambda: _has(city, "silent", "sms"), what="the first SMS")
    cancel = cancel_of(HEAT_SENDER, "KR.SEOUL.HEAT.20240801-001", sent, "KR.SEOUL.HEAT.20240801-009")
    cancelled_at = time.time()
    status, body = await post_cap(city, cancel)
    assert status == 202 and body["id"] == aid and body["status"] == "cancelled", body
    summary = await city.settled(aid)
    assert summary["status"] == "cancelled" and summary["deliveries"]["cancelled"] == 1
    await asyncio.sleep(4.5)  # past the SMS step's deadline: the call would have started by now
    assert [r["channel"] for r in city.received("silent")] == ["sms"]
    assert all(r["created_at"] < cancelled_at + 0.5 for r in city.received("silent"))
    # The same Cancel again changes nothing and says the same.
    status, again = await post_cap(city, cancel)
    assert status == 202 and again["id"] == aid


async def _has(city, rid: str, channel: str) -> bool:
    return any(r["channel"] == channel for r in city.received(rid))


async def test_no_step_starts_after_an_alert_expires(city):
    await city.add(placed("silent", JONGNO_INSIDE, feature_phone("+821055540011")),
                   {**answers_sms("+821055540011", reply=None), "voice": {"answer": "human", "press": ["1"]}})
    expires = (datetime.now(timezone.utc) + timedelta(seconds=2.5)).isoformat()
    aid = await city.post_alert({
        "event": "Heat wave", "severity": "Severe", "expires": expires,
        "content": {"ko": {"headline": "폭염 경보", "body": "물을 자주 드세요."}},
        "audience": {"residents": ["silent"]}, "policy": {"step_timeouts": {"sms": 4, "voice": 4}}})
    summary = await city.settled(aid, timeout=30)
    assert summary["deliveries"]["expired"] == 1
    await asyncio.sleep(2)
    assert [r["channel"] for r in city.received("silent")] == ["sms"]
    assert (await city.path(aid, "silent"))["state"] == "expired"


async def test_an_update_reaches_the_confirmed_by_their_channel_and_the_rest_with_the_new_words(city):
    # Confirmed before the update: answers the first SMS at once.
    await city.add(placed("quick", km_north(1), feature_phone("+821055550001"), district="26260",
                          languages=("en",)), answers_sms("+821055550001"))
    # Still pending at the update: the first phone never answers; the second does.
    await city.add(placed("pending", km_north(2), feature_phone("+821055550002"), feature_phone("+821055550003"),
                          district="26260", languages=("en",)),
                   None)
    # The simulator knows each phone by its behaviour record: the second phone is "pending-2" there.
    city.sim.behaviour.add_many([{"resident": "pending", "phones": ["+821055550002"], "sms": {"outcome": "delivered"}},
                                 {"resident": "pending-2", **answers_sms("+821055550003")}])
    # Outside the first circle (3.5 km), inside the updated one (5 km).
    await city.add(placed("newcomer", km_north(4.5), feature_phone("+821055550004"), district="26260",
                          languages=("en",)), answers_sms("+821055550004"))
    sent = now_kst()
    # The SMS step waits 8 s: the next step of "pending" starts well after the update.
    status, body = await post_cap(city, cap_doc("flood_circle.xml", sent=sent),
                                  {"step_timeouts": {"sms": 8, "voice": 8}})
    assert status == 202, body
    aid = body["id"]
    await until(lambda: _state(city, aid, "quick", "confirmed"), what="quick confirmed")
    await until(lambda: _has(city, "pending", "sms"), what="pending's first SMS")
    update = cap_doc("flood_update.xml", references=[(FLOOD_SENDER, "KR.BUSAN.FLOOD.0001", sent)])
    status, body = await post_cap(city, update)
    assert status == 202 and body["id"] == aid and body["version"] == 2, body

    await until(lambda: _state(city, aid, "pending", "confirmed", "unreachable"), timeout=40, what="pending ends")
    await until(lambda: _state(city, aid, "newcomer", "confirmed"), what="newcomer confirmed")
    summary = await city.get(f"/v1/alerts/{aid}")
    assert summary["version"] == 2 and summary["targeted"] == 3
    (round_,) = summary["update_rounds"]
    assert round_["targeted"] == 1  # only "quick" was confirmed when the update came
    await city.settled(round_["id"])
    quick = texts(city, "quick", "sms")
    assert len(quick) == 2 and "extended" not in quick[0] and "extended" in quick[1]
    # "pending": the first phone got the old words; the second (its own behaviour record) the new.
    assert [("extended" in t) for t in texts(city, "pending", "sms")] == [False]
    assert [("extended" in t) for t in texts(city, "pending-2", "sms")] == [True]
    assert all("extended" in t for t in texts(city, "newcomer", "sms"))
    # The round told "quick" on the channel that confirmed them.
    assert (await city.path(round_["id"], "quick"))["plan"] == [{"channels": ["sms"], "timeout_s": 8}]
    # The worker's task, run again (a redelivery after a crash), makes nothing twice.
    again = await Lifecycle(city.redis).apply_update(Engine(city.stack.settings, city.redis), aid, 2)
    assert again.round_id == round_["id"] and again.added == []
    summary = await city.get(f"/v1/alerts/{aid}")
    assert summary["targeted"] == 3 and [r["id"] for r in summary["update_rounds"]] == [round_["id"]]


async def _state(city, aid: str, rid: str, *states: str) -> bool:
    async with city.http.get(f"{city.api}/v1/alerts/{aid}/deliveries/{rid}", headers=city.auth) as r:
        return r.status == 200 and (await r.json())["state"] in states


async def test_an_update_that_shrinks_the_area_stops_steps_for_those_left_out(city):
    await city.add(placed("stays", km_north(1), feature_phone("+821055560001"), district="26260",
                          languages=("en",)), {**answers_sms("+821055560001", reply=None)})
    await city.add(placed("left-out", km_north(3), feature_phone("+821055560002"), district="26260",
                          languages=("en",)), {**answers_sms("+821055560002", reply=None)})
    sent = now_kst()
    _, body = await post_cap(city, cap_doc("flood_circle.xml", sent=sent), {"step_timeouts": {"sms": 4, "voice": 4}})
    aid = body["id"]
    await until(lambda: _has(city, "left-out", "sms"), what="left-out's SMS")
    smaller = cap_doc("flood_update.xml", references=[(FLOOD_SENDER, "KR.BUSAN.FLOOD.0001", sent)]).replace(
        b"35.2100,129.0800 5", b"35.2100,129.0800 2")
    status, _ = await post_cap(city, smaller)
    assert status == 202
    await until(lambda: _state(city, aid, "left-out", "cancelled"), what="left-out cancelled")
    await asyncio.sleep(4.5)
    assert [r["channel"] for r in city.received("left-out")] == ["sms"]
    assert "voice" in [r["channel"] for r in city.received("stays")] or (await city.path(aid, "stays"))["step"] >= 1


async def test_an_update_or_cancel_must_name_an_alert_this_agency_posted(city):
    bogus = cancel_of(HEAT_SENDER, "NO.SUCH.ALERT", now_kst(), "KR.SEOUL.HEAT.X")
    status, problem = await post_cap(city, bogus)
    assert status == 422
    assert problem["errors"][0]["field"] == "alert/references"


async def test_a_drill_cannot_be_updated_into_a_real_alert(city):
    await city.add(placed("volunteer", km_north(1), feature_phone("+821055570001"), district="26260",
                          languages=("en",), drills=True), answers_sms("+821055570001"))
    sent = now_kst()
    status, body = await post_cap(city, cap_doc("flood_circle.xml", sent=sent, status="Exercise"),
                                  {"step_timeouts": {"sms": 3}})
    assert status == 202, body
    update = cap_doc("flood_update.xml", references=[(FLOOD_SENDER, "KR.BUSAN.FLOOD.0001", sent)])
    status, problem = await post_cap(city, update)
    assert status == 422 and problem["errors"][0]["field"] == "alert/status"


async def test_a_cancelled_alert_cannot_be_updated(city):
    sent = now_kst()
    _, body = await post_cap(city, cap_doc("flood_circle.xml", sent=sent), {"step_timeouts": {"sms": 3}})
    await post_cap(city, cancel_of(FLOOD_SENDER, "KR.BUSAN.FLOOD.0001", sent, "KR.BUSAN.FLOOD.0003"))
    update = cap_doc("flood_update.xml", references=[(FLOOD_SENDER, "KR.BUSAN.FLOOD.0001", sent)])
    status, problem = await post_cap(city, update)
    assert status == 409, problem
    async with city.http.get(f"{city.api}/v1/alerts/{body['id']}.cap", headers=city.auth) as r:
        emitted = parse_cap(await r.read())
    assert emitted.msg_type == "Cancel" and emitted.identifier == "KR.BUSAN.FLOOD.0003"


async def test_a_minor_alert_waits_for_a_residents_quiet_hours_to_end(city):
    now = datetime.now(KST)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=2)).strftime("%H:%M"),
             "tz": "Asia/Seoul"}
    await city.add(placed("sleeper", JONGNO_INSIDE, feature_phone("+821055580001"), quiet_hours=quiet),
                   answers_sms("+821055580001"))
    await city.add(placed("awake", JONGNO_INSIDE, feature_phone("+821055580002")), answers_sms("+821055580002"))
    aid = await city.post_alert({
        "event": "Air quality", "severity": "Minor",
        "content": {"ko": {"headline": "미세먼지 주의", "body": "외출을 줄이세요."}},
        "audience": {"residents": ["sleeper", "awake"]}, "policy": {"step_timeouts": {"sms": 3}}})
    await until(lambda: _state(city, aid, "awake", "confirmed"), what="awake confirmed")
    assert city.received("sleeper") == []
    assert (await city.path(aid, "sleeper"))["state"] == "planned"
    held = await city.redis.zscore(keys.alert_timers(aid), "sleeper|0|r|0")
    end = now.replace(second=0, microsecond=0) + timedelta(hours=2)
    assert held == pytest.approx(end.timestamp() * 1000, abs=60_000)
    # The quiet hours end (we move the clock of that one timer): the first step goes.
    await city.redis.zadd(keys.alert_timers(aid), {"sleeper|0|r|0": int(time.time() * 1000)})
    await until(lambda: _state(city, aid, "sleeper", "confirmed"), what="sleeper confirmed")
    assert [r["channel"] for r in city.received("sleeper")] == ["sms"]


async def test_an_extreme_alert_does_not_wait_for_quiet_hours(city):
    now = datetime.now(KST)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=2)).strftime("%H:%M")}
    await city.add(placed("sleeper", JONGNO_INSIDE, feature_phone("+821055590001"), quiet_hours=quiet),
                   answers_sms("+821055590001"))
    aid = await city.post_alert({
        "event": "Flash flood", "severity": "Extreme", "urgency": "Immediate",
        "content": {"ko": {"headline": "급류 경보", "body": "즉시 대피하세요."}},
        "audience": {"residents": ["sleeper"]}, "policy": {"step_timeouts": {"sms": 3}}})
    await until(lambda: _state(city, aid, "sleeper", "confirmed"), what="sleeper confirmed")


async def test_the_json_update_route_replaces_the_content_too(city):
    await city.add(placed("quick", JONGNO_INSIDE, feature_phone("+821055600001")), answers_sms("+821055600001"))
    alert = {"event": "Heat wave", "severity": "Moderate",
             "content": {"ko": {"headline": "폭염 주의보", "body": "물을 자주 드세요."}},
             "audience": {"residents": ["quick"]}, "policy": {"step_timeouts": {"sms": 3}}}
    aid = await city.post_alert(alert)
    await until(lambda: _state(city, aid, "quick", "confirmed"), what="confirmed")
    status, body = await call(city, "POST", f"/v1/alerts/{aid}/update", json={
        **alert, "content": {"ko": {"headline": "폭염 경보로 격상", "body": "야외 활동을 멈추세요."}}})
    assert status == 202 and body["version"] == 2
    await until(lambda: _received_count(city, "quick", 2), what="the update SMS")
    assert "격상" in texts(city, "quick", "sms")[1]


async def _received_count(city, rid: str, n: int) -> bool:
    return len(city.received(rid)) >= n
