"""The transitions module: batch ops of transitions.lua (many deliveries a
call, a reply for each, in order), the alert's status, and the scripts of
gateway/transitions/ (residents, leases)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from gateway import keys, transitions
from gateway.deliveries import awaiting_receipt
from gateway.transitions import LUA_CHUNK, Event, Transitions, now_ms

STEPS = [{"l": [["sms", 0]], "t": 60}, {"l": [["voice", 0]], "t": 600}]


def rows(n: int) -> list[tuple[str, int, list, str]]:
    return [(f"r{i:04d}", i, STEPS, "planned") for i in range(n)]


async def test_a_batch_larger_than_one_call_is_claimed_once_each_in_order(redis):
    t, n = Transitions(redis), LUA_CHUNK * 2 + 7
    assert await t.plan("a1", 4, 2, rows(n)) == []
    pipe = redis.pipeline(transaction=False)
    pipe.ping()  # replies of other commands in the same pipeline stay apart
    first = await t.claim(pipe, "a1", [(f"r{i:04d}", 0, 0) for i in range(n)])
    again = await t.claim(pipe, "a1", [(f"r{i:04d}", 0, 0) for i in reversed(range(n))])
    results = await pipe.execute()
    assert results[0] is True
    assert [r[0] for r in first.of(results)] == [b"ok"] * n
    assert [r[0] for r in again.of(results)] == [b"skip"] * n
    assert int(await redis.hget(keys.alert_counts("a1"), "in_progress")) == n


async def test_planning_claims_the_first_send_of_new_deliveries_only(redis):
    t, n = Transitions(redis), LUA_CHUNK + 3
    claimed = await t.plan("a2", 4, 2, rows(n), claim=True)
    assert [rid for rid, _ in claimed] == [f"r{i:04d}" for i in range(n)]
    assert [legs for _, legs in claimed] == [[["sms", 0]]] * n
    # The same batch again (a worker died after planning): nothing new, nothing claimed twice.
    assert await t.plan("a2", 4, 2, rows(n), claim=True) == []
    counts = await redis.hgetall(keys.alert_counts("a2"))
    assert counts[b"in_progress"] == str(n).encode() and counts[b"targeted"] == str(n).encode()


async def test_a_cancelled_alert_plans_without_claiming(redis):
    t = Transitions(redis)
    await redis.hset(keys.alert("a3"), "status", "cancelled")
    assert await t.plan("a3", 4, 2, rows(5), claim=True) == []
    pipe = redis.pipeline(transaction=False)
    replies = await t.claim(pipe, "a3", [(f"r{i:04d}", 0, 0) for i in range(5)])
    assert [r[0] for r in replies.of(await pipe.execute())] == [b"cancelled"] * 5


MAIL = [{"l": [["mail", 1]], "t": 90}]


async def unreachable(t: Transitions, redis, aid: str, n: int) -> None:
    """n residents planned on STEPS, all of whom ended unreachable; the alert finished."""
    await t.plan(aid, 4, 2, rows(n))
    pipe = redis.pipeline(transaction=False)
    await t.close(pipe, aid, [f"r{i:04d}" for i in range(n)], "unreachable")
    await pipe.execute()
    await redis.hset(keys.alert(aid), "status", "done")


async def reopen(t: Transitions, redis, aid: str, rids, steps=MAIL, who="mina") -> list[bytes]:
    pipe = redis.pipeline(transaction=False)
    replies = await t.reopen(pipe, aid, [(rid, steps) for rid in rids], who)
    return replies.of(await pipe.execute())


async def test_reopening_the_unreachable_puts_them_back_in_progress_in_the_same_alert(redis):
    t = Transitions(redis)
    await unreachable(t, redis, "a4", 3)
    assert await reopen(t, redis, "a4", ["r0000", "r0001"]) == [b"reopened:2", b"reopened:2"]
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.alert_counts("a4"))).items()}
    # One story: nobody is added, unreachable falls by those reopened.
    assert (counts["targeted"], counts["unreachable"], counts["in_progress"], counts["reopened"]) == (3, 1, 2, 2)
    assert await redis.hget(keys.alert("a4"), "status") == b"active"
    assert await redis.sismember(keys.ACTIVE_ALERTS, "a4")  # the finished alert is watched again
    d = await redis.hgetall(keys.delivery("a4", "r0000"))
    assert (d[b"s"], d[b"k"], d[b"n"]) == (b"in_progress", b"2", b"0") and b"e" not in d
    assert d[b"p"].count(b'"mail"') == 1 and d[b"p"].count(b'"sms"') == 1
    assert d[b"h"].split(b"\n")[-1].split(b"|")[1:6] == [b"2", b"0", b"*", b"reopened", b"mina"]
    # The new step is sent by whoever reopened it, or by the pump after the claim lease.
    assert await redis.zscore(keys.alert_timers("a4"), "r0000|2|r|0") is not None
    pipe = redis.pipeline(transaction=False)
    claimed = await t.claim(pipe, "a4", [("r0000", 2, 0)])
    assert claimed.of(await pipe.execute())[0] == [b"ok", b'[["mail",1]]']


async def test_a_second_reopen_sends_nothing_twice(redis):
    t = Transitions(redis)
    await unreachable(t, redis, "a5", 1)
    assert await reopen(t, redis, "a5", ["r0000"]) == [b"reopened:2"]
    assert await reopen(t, redis, "a5", ["r0000"]) == [b"noop"]
    d = await redis.hgetall(keys.delivery("a5", "r0000"))
    assert d[b"p"].count(b'"mail"') == 1 and d[b"h"].count(b"reopened") == 1
    assert int(await redis.hget(keys.alert_counts("a5"), "reopened")) == 1


async def test_a_reopened_step_that_times_out_ends_unreachable_again(redis):
    t = Transitions(redis)
    await unreachable(t, redis, "a6", 1)
    await reopen(t, redis, "a6", ["r0000"])
    pipe = redis.pipeline(transaction=False)
    await t.claim(pipe, "a6", [("r0000", 2, 0)])
    await pipe.execute()
    await redis.hset(keys.delivery("a6", "r0000"), "d", 1)  # the deadline passed
    pipe = redis.pipeline(transaction=False)
    replies = await t.timer(pipe, "a6", ["r0000|2|t"])
    assert replies.of(await pipe.execute()) == [b"unreachable"]
    counts = await redis.hgetall(keys.alert_counts("a6"))
    assert (counts[b"unreachable"], counts[b"in_progress"], counts[b"targeted"]) == (b"1", b"0", b"1")


async def test_a_confirmed_delivery_is_not_reopened(redis):
    t = Transitions(redis)
    await t.plan("a7", 4, 2, rows(1))
    pipe = redis.pipeline(transaction=False)
    await t.close(pipe, "a7", ["r0000"], "confirmed")
    await pipe.execute()
    assert await reopen(t, redis, "a7", ["r0000"]) == [b"noop"]
    assert await redis.hget(keys.delivery("a7", "r0000"), "s") == b"confirmed"


async def test_a_cancelled_or_expired_alert_reopens_nothing(redis):
    t = Transitions(redis)
    await unreachable(t, redis, "a8", 1)
    await redis.hset(keys.alert("a8"), "status", "cancelled")
    assert await reopen(t, redis, "a8", ["r0000"]) == [b"closed"]
    await unreachable(t, redis, "a9", 1)
    await redis.hset(keys.alert("a9"), "expires_ms", 1)
    assert await reopen(t, redis, "a9", ["r0000"]) == [b"closed"]
    assert await redis.hget(keys.delivery("a9", "r0000"), "s") == b"unreachable"
    assert await redis.hget(keys.alert("a9"), "status") == b"done"


# The alert's status ------------------------------------------------------------

DOC = b'{"event": "Heat wave"}'


async def create(t: Transitions, aid: str, *, idempotency_key: str = "", cap_field: str = "", digest: str = "d1",
                 callbacks: bool = False):
    return await t.create_alert(aid, "ag1", DOC, digest, expires_ms=0, idempotency_key=idempotency_key,
                                idempotency_ttl_s=60, cap_field=cap_field, cap=b"{}" if cap_field else "",
                                callbacks=callbacks, drill="")


async def test_an_alert_posted_twice_with_one_idempotency_key_is_stored_once(redis):
    t = Transitions(redis)
    idem = keys.idempotency("ag1", "k1")
    assert await create(t, "al_1", idempotency_key=idem) == ""
    assert await create(t, "al_2", idempotency_key=idem, digest="d2") == "al_1|d1"
    assert await redis.exists(keys.alert("al_2")) == 0
    assert await redis.hget(keys.alert("al_1"), "status") == b"planning"
    assert await redis.sismember(keys.ACTIVE_ALERTS, "al_1")


async def test_a_cancel_that_comes_while_the_audience_is_resolved_wins_over_the_fan_out(redis):
    t = Transitions(redis)
    await create(t, "al_3")
    assert await t.cancel_alert("al_3") == ("cancelled", "planning")
    assert not await t.activate_alert("al_3", 10, "planning", "active")
    assert await redis.hmget(keys.alert("al_3"), "status", "targeted") == [b"cancelled", None]
    assert await t.cancel_alert("al_3") == ("unchanged", "cancelled")
    assert await t.cancel_alert("al_none") == ("missing", "")


async def test_a_finished_alert_is_cancelled_too_and_no_update_revives_it(redis):
    t = Transitions(redis)
    await create(t, "al_4")
    assert await t.activate_alert("al_4", 2, "planning", "active")
    assert await t.end_alert("al_4", "done")
    assert await t.cancel_alert("al_4") == ("cancelled", "done")
    assert await t.update_alert("al_4", DOC, 0, agency_id="ag1", cap_field="", cap="", digest="d2") == \
        ("closed", "cancelled")
    assert not await t.end_alert("al_4", "expired")  # the pump keeps the cancel's label
    assert not await t.activate_alert("al_4", None, "done")
    assert await redis.hget(keys.alert("al_4"), "status") == b"cancelled"


async def test_the_same_cap_update_twice_raises_the_version_once(redis):
    t = Transitions(redis)
    await create(t, "al_5", cap_field="city,msg-1")
    update = {"agency_id": "ag1", "cap_field": "city,msg-2", "cap": b"{}", "digest": "d2"}
    assert await t.update_alert("al_5", DOC, 0, **update) == ("ok", "2")
    assert await t.update_alert("al_5", DOC, 0, **update) == ("prior", "al_5|d2")
    # A cancel naming a message already used is recognised, and cancels nothing.
    assert await t.cancel_alert("al_5", agency_id="ag1", cap_field="city,msg-1", cap=b"{}", digest="d1") == \
        ("prior", "al_5|d1")
    assert await redis.hmget(keys.alert("al_5"), "version", "status") == [b"2", b"planning"]


async def test_an_update_round_is_created_once_and_watched_at_once(redis):
    t = Transitions(redis)
    assert await t.start_round("al_6_v2", "al_6", DOC, "ag1", expires_ms=0, callbacks=True, residents=3)
    assert not await t.start_round("al_6_v2", "al_6", DOC, "ag1", expires_ms=0, callbacks=True, residents=3)
    assert await redis.lrange(keys.alert_rounds("al_6"), 0, -1) == [b"al_6_v2"]
    assert await redis.hmget(keys.alert("al_6_v2"), "status", "parent", "targeted") == [b"active", b"al_6", b"3"]
    assert await redis.sismember(keys.ACTIVE_ALERTS, "al_6_v2")
    assert await redis.sismember(keys.CALLBACK_ALERTS, "al_6_v2")


async def test_an_update_reaches_the_rounds_still_running_and_leaves_ended_ones_as_they_were(redis):
    t = Transitions(redis)
    for round_id in ("al_7_v2", "al_7_v3"):
        await t.start_round(round_id, "al_7", DOC, "ag1", expires_ms=0, callbacks=False, residents=1)
    await t.end_alert("al_7_v2", "done")
    assert await t.refresh_round("al_7_v3", b'{"event": "Flood"}', 99)
    assert not await t.refresh_round("al_7_v2", b'{"event": "Flood"}', 99)
    assert await redis.hmget(keys.alert("al_7_v3"), "doc", "expires_ms", "version") == [b'{"event": "Flood"}', b"99",
                                                                                        b"2"]
    assert await redis.hmget(keys.alert("al_7_v2"), "doc", "version") == [DOC, b"1"]


async def test_the_agency_hears_the_final_summary_once_and_only_after_the_alert_ended(redis):
    t = Transitions(redis)
    await create(t, "al_8", callbacks=True)
    await t.activate_alert("al_8", 1, "planning")
    assert not await t.queue_summary("al_8", "final", b"{}")  # still running
    assert await t.queue_summary("al_8", "progress", b"{}")
    await t.end_alert("al_8", "done")
    assert not await t.queue_summary("al_8", "final", b"{}")  # the pump still watches it
    await redis.srem(keys.ACTIVE_ALERTS, "al_8")
    assert not await t.queue_summary("al_8", "progress", b"{}")
    assert await t.queue_summary("al_8", "final", b"{}")
    assert not await t.queue_summary("al_8", "final", b"{}")
    events = await redis.xrange(keys.alert_events("al_8"))
    assert [e[b"t"] for _, e in events] == [b"progress", b"final"]


async def test_residents_an_update_adds_run_a_finished_alert_again_with_a_new_final_summary_to_come(redis):
    t = Transitions(redis)
    await create(t, "al_9", callbacks=True)
    await t.activate_alert("al_9", 1, "planning")
    await t.end_alert("al_9", "done")
    await redis.srem(keys.ACTIVE_ALERTS, "al_9")  # the pump saw it end
    assert await t.queue_summary("al_9", "final", b"{}")
    await redis.srem(keys.CALLBACK_ALERTS, "al_9")  # the courier sent it and forgot the alert
    await t.grow_alert("al_9", 3)
    assert await redis.hmget(keys.alert("al_9"), "status", "targeted", "cb_final") == [b"active", b"3", None]
    assert await redis.sismember(keys.ACTIVE_ALERTS, "al_9")
    assert await redis.sismember(keys.CALLBACK_ALERTS, "al_9")
    # A cancelled alert grows no more: its count moves, its label stays.
    await t.cancel_alert("al_9")
    await t.grow_alert("al_9", 4)
    assert await redis.hmget(keys.alert("al_9"), "status", "targeted") == [b"cancelled", b"4"]


# Residents -----------------------------------------------------------------------


async def test_nothing_written_about_an_erased_resident_brings_them_back(redis):
    # An SMS sent, a STOP, a dead number or a confirmation arriving after the erasure.
    pipe = redis.pipeline(transaction=False)
    transitions.remember_reply(pipe, "gone", "ref1")
    transitions.contact_confirmed(pipe, "gone", 0, now_ms())
    transitions.reseal(pipe, "gone", b"old", b"new")
    assert await pipe.execute() == [0, 0, 0]
    assert not await transitions.set_consent(redis, "gone", False)
    assert not await transitions.dead_contact(redis, "gone", 1)
    assert await redis.exists(keys.resident("gone")) == 0


async def test_a_dead_contact_point_is_marked_once(redis):
    await redis.hset(keys.resident("r1"), mapping={"p": "{}", "x": ""})
    assert await transitions.dead_contact(redis, "r1", 2)
    assert not await transitions.dead_contact(redis, "r1", 2)
    assert await transitions.dead_contact(redis, "r1", 0)
    assert await redis.hget(keys.resident("r1"), "x") == b"2,0"


async def test_a_stop_keeps_the_rest_of_the_profile(redis):
    await redis.hset(keys.resident("r2"), mapping={"p": '{"l": ["ko"], "ne": true}'})
    assert await transitions.set_consent(redis, "r2", False)
    assert await redis.hget(keys.resident("r2"), "p") in (b'{"l":["ko"],"ne":false}', b'{"ne":false,"l":["ko"]}')


async def test_a_confirmation_dates_only_a_contact_point_the_resident_has(redis):
    await redis.hset(keys.resident("r3"), mapping={"p": "{}", "lc": '[["h0",1000],["h1",1000]]'})
    pipe = redis.pipeline(transaction=False)
    transitions.contact_confirmed(pipe, "r3", 1, 5000)
    transitions.contact_confirmed(pipe, "r3", 2, 5000)  # replaced meanwhile by a shorter list
    assert await pipe.execute() == [1, 0]
    assert await redis.hget(keys.resident("r3"), "lc") == b'[["h0",1000],["h1",5000]]'


async def test_a_reseal_lands_only_on_the_contact_data_it_read(redis):
    await redis.hset(keys.resident("r4"), mapping={"p": "{}", "c": "agency-wrote-this"})
    pipe = redis.pipeline(transaction=False)
    transitions.reseal(pipe, "r4", b"what-was-read", b"sealed-again")
    assert await pipe.execute() == [0]
    assert await redis.hget(keys.resident("r4"), "c") == b"agency-wrote-this"


# Leases ------------------------------------------------------------------------


async def test_one_pump_leads_and_only_it_renews_or_lets_go(redis):
    assert await transitions.lead(redis, keys.PUMP_LEADER, "host-a", 5000)
    assert not await transitions.lead(redis, keys.PUMP_LEADER, "host-b", 5000)
    assert await transitions.lead(redis, keys.PUMP_LEADER, "host-a", 5000)
    assert not await transitions.release(redis, keys.PUMP_LEADER, "host-b")
    assert await transitions.release(redis, keys.PUMP_LEADER, "host-a")
    assert await transitions.lead(redis, keys.PUMP_LEADER, "host-b", 5000)


async def test_a_due_timer_handed_out_comes_due_again_after_its_lease(redis):
    seconds, micros = await redis.time()  # due by Redis's clock, not ours
    now = seconds * 1000 + micros // 1000
    await redis.zadd(keys.alert_timers("a10"), {"r1|0|t": now - 1000, "r2|0|t": now, "r3|0|t": now + 9000})
    pipe = redis.pipeline(transaction=False)
    transitions.due_timers(pipe, "a10", 10, 60_000)
    transitions.due_timers(pipe, "a10", 10, 60_000)
    first, second = await pipe.execute()
    assert first == [[b"r1|0|t", b"r2|0|t"], str(now + 9000).encode()]
    assert second == [[], str(now + 9000).encode()]  # handed out: not again before the lease ends
    assert now + 60_000 <= await redis.zscore(keys.alert_timers("a10"), "r1|0|t") < now + 70_000


async def test_a_script_asked_for_an_op_it_lacks_says_so(redis):
    with pytest.raises(ResponseError, match="unknown op"):
        await transitions.LEASES(redis, ["k"], ["steal"])
    with pytest.raises(ResponseError, match="unknown op"):
        await Transitions(redis)._run("a11", ["teleport"])


async def event(t: Transitions, redis, aid: str, *events: Event) -> list[bytes]:
    pipe = redis.pipeline(transaction=False)
    replies = await t.event(pipe, aid, events)
    return replies.of(await pipe.execute())


async def test_a_receipt_the_provider_sends_three_times_counts_once(redis):
    t = Transitions(redis)
    await t.plan("a9", 5, 2, rows(2), claim=True)
    sent = [Event(f"r{i:04d}", 0, 0, 0, "sent", False, "twilio", f"SM{i}", None, "sms") for i in range(2)]
    delivered = Event("r0000", 0, 0, 0, "delivered", False, "twilio", "SM0", None, "sms")
    for _ in range(3):
        await event(t, redis, "a9", *sent)
        await event(t, redis, "a9", delivered)
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.alert_counts("a9"))).items()}
    assert (counts["a:sms:sent"], counts["a:sms:delivered"]) == (2, 1)
    # Each copy is still in the resident's history: the provider did say it three times.
    history = (await redis.hget(keys.delivery("a9", "r0000"), "h")).decode()
    assert history.count("|delivered|twilio|SM0|") == 3


async def test_the_same_status_for_another_attempt_or_message_counts_again(redis):
    t = Transitions(redis)
    await t.plan("a10", 5, 3, rows(1), claim=True)
    await event(t, redis, "a10", Event("r0000", 0, 0, 0, "failed", False, "twilio", "SM1", "30003", "sms", 0))
    await event(t, redis, "a10", Event("r0000", 0, 1, 0, "failed", False, "twilio", "SM2", "30003", "sms", 0))
    counts = await redis.hgetall(keys.alert_counts("a10"))
    assert counts[b"a:sms:failed"] == b"2"



async def test_a_next_step_whose_hand_off_is_lost_is_sent_by_a_timer(redis):
    # A failure moves the delivery on to its next step, which the caller sends at
    # once. A worker killed in between, or a follow-up task never published, once
    # left the resident in progress with no timer at all (two of 10,000 in a run
    # of tests/e2e/test_multihost.py that killed a worker host).
    t = Transitions(redis)
    await t.plan("a13", 4, 1, rows(2), claim=True)
    refused = [Event(f"r{i:04d}", 0, 0, 0, "failed", True, "twilio", f"SM{i}", "21211", "sms") for i in range(2)]
    pipe = redis.pipeline(transaction=False)
    replies = await t.event(pipe, "a13", refused, lease_ms=50)
    assert replies.of(await pipe.execute()) == [b"next:1", b"next:1"]
    # r0001's next step is claimed as usual: its hand-off timer goes, the claim's lease guards it.
    pipe = redis.pipeline(transaction=False)
    await t.claim(pipe, "a13", [("r0001", 1, 0)])
    await pipe.execute()
    assert await redis.zscore(keys.alert_timers("a13"), "r0001|1|r|0") is None
    # Nobody claims r0000's (its worker died): a timer comes due and claims it.
    await asyncio.sleep(0.1)
    pipe = redis.pipeline(transaction=False)
    transitions.due_timers(pipe, "a13", 10, 60_000)
    (due, _), = await pipe.execute()
    assert due == [b"r0000|1|r|0"]
    pipe = redis.pipeline(transaction=False)
    replies = await t.timer(pipe, "a13", [m.decode() for m in due])
    assert replies.of(await pipe.execute()) == [[b"ok", b'[["voice",0]]', 1, 0]]



async def test_a_send_still_waiting_for_its_slot_keeps_its_claim_and_no_other_worker_takes_it_over(redis):
    # A call waiting for the provider's pace (10 calls a second, thousands due)
    # once outlived its 30 s claim lease: the step was claimed again and placed twice.
    t = Transitions(redis)
    await t.plan("a14", 4, 1, rows(2), claim=True)
    await asyncio.sleep(0.06)
    pipe = redis.pipeline(transaction=False)
    renewed = await t.renew(pipe, "a14", [("r0000", 0, 0)], lease_ms=50)
    replaced = await t.claim(pipe, "a14", [("r0000", 0, 0), ("r0001", 0, 0)], lease_ms=50)
    results = await pipe.execute()
    assert renewed.of(results) == [1]
    # r0000's claim runs from its renewal: not taken over; r0001's ran out: claimed again.
    assert [r[0] for r in replaced.of(results)] == [b"skip", b"ok"]
    # Once the provider has the send, there is no claim left to keep.
    await event(t, redis, "a14", Event("r0000", 0, 0, 0, "queued", False, "twilio", "SM1", None, "sms"))
    pipe = redis.pipeline(transaction=False)
    renewed = await t.renew(pipe, "a14", [("r0000", 0, 0)], lease_ms=50)
    assert renewed.of(await pipe.execute()) == [0]


def test_only_legs_a_provider_accepted_and_never_settled_await_a_receipt():
    lines = ["1|0|0|*|claimed|||", "2|0|0|0|queued|twilio|SM1|", "3|0|0|1|queued|twilio|CA1|",
             "4|0|0|1|failed|twilio|CA1|busy", "5|0|0|2|failed|twilio||20500", "6|1|0|0|queued|twilio|SM9|"]
    assert awaiting_receipt(lines, 0, 0) == [(0, "twilio", "SM1")]
    assert awaiting_receipt(lines, 1, 0) == [(0, "twilio", "SM9")]
    assert awaiting_receipt(lines + ["7|0|0|0|delivered|twilio|SM1|"], 0, 0) == []


async def test_a_receipt_looked_up_before_escalating_counts_once_when_its_late_callback_comes(redis):
    t = Transitions(redis)
    await t.plan("a12", 4, 2, rows(2), claim=True)
    looked_up = [Event(f"r{i:04d}", 0, 0, 0, "delivered", False, "twilio", f"SM{i}", "", "sms") for i in range(2)]
    late = [Event(f"r{i:04d}", 0, 0, 0, status, False, "twilio", f"SM{i}", "", "sms")
            for i in range(2) for status in ("sent", "delivered")]
    # r0000: the look-up's answer first, then the late callbacks; r0001 the other way round.
    assert await event(t, redis, "a12", looked_up[0]) == [b"confirmed"]
    await event(t, redis, "a12", *late)
    assert await event(t, redis, "a12", looked_up[1]) == [b"late"]
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.alert_counts("a12"))).items()}
    assert (counts["a:sms:sent"], counts["a:sms:delivered"], counts["confirmed"]) == (2, 2, 2)


async def test_a_send_the_provider_never_answered_is_not_failed_and_waits_for_its_step_deadline(redis):
    t = Transitions(redis)
    await t.plan("a13", 4, 3, rows(1), claim=True)
    hung = Event("r0000", 0, 0, 0, "unanswered", False, "twilio", "", "timeout", "sms", 0)
    # It may have gone: no retry (a second text), no next step before the deadline.
    assert await event(t, redis, "a13", hung) == [b"noop"]
    d = await redis.hmget(keys.delivery("a13", "r0000"), "s", "k", "n", "f")
    assert d == [b"in_progress", b"0", b"0", b"0"]
    timers = [m.decode() for m in await redis.zrange(keys.alert_timers("a13"), 0, -1)]
    assert timers == ["r0000|0|t"]  # the claim lease is gone: the send came back, nothing to send again
    counts = await redis.hgetall(keys.alert_counts("a13"))
    assert counts[b"a:sms:unanswered"] == b"1"


async def test_a_call_answered_just_before_its_step_ends_is_heard_out_not_cut_off(redis):
    # A landline's only step is a call; it is answered (`sent`) a moment before the
    # step's deadline. Under load, a resident who pressed 1 a second after the deadline
    # once ended unreachable (753 of 10,000 in the tripled-callbacks storm).
    t = Transitions(redis)
    call_only = [{"l": [["voice", 0]], "t": 600}]
    await t.plan("a15", 4, 1, [("r0000", 0, call_only, "planned")], claim=True)
    now = int(await redis.hget(keys.delivery("a15", "r0000"), "d"))
    await redis.hset(keys.delivery("a15", "r0000"), "d", now - 600_000 + 2_000)  # 2 s of the step left
    await event(t, redis, "a15", Event("r0000", 0, 0, 0, "queued", False, "twilio", "CA1", None, "voice"))
    await event(t, redis, "a15", Event("r0000", 0, 0, 0, "sent", False, "twilio", "CA1", None, "voice",
                                       hold_ms=120_000))
    held = int(await redis.hget(keys.delivery("a15", "r0000"), "H"))
    assert held >= now - 600_000 + 110_000
    # The step's deadline itself stays: the hold buys no retries.
    assert int(await redis.hget(keys.delivery("a15", "r0000"), "d")) == now - 600_000 + 2_000
    # The timer the pump had already taken for the old deadline finds time left and comes back then.
    pipe = redis.pipeline(transaction=False)
    replies = await t.timer(pipe, "a15", ["r0000|0|t"])
    assert replies.of(await pipe.execute()) == [b"noop"]
    assert await redis.zscore(keys.alert_timers("a15"), "r0000|0|t") == held
    # They press 1: confirmed by the call, not unreachable.
    assert await event(t, redis, "a15", Event("r0000", 0, 0, 0, "acknowledged", False, "twilio", "CA1", None,
                                              "voice")) == [b"confirmed"]


async def test_a_text_that_left_the_provider_does_not_hold_its_step(redis):
    t = Transitions(redis)
    await t.plan("a16", 4, 1, rows(1), claim=True)
    await event(t, redis, "a16", Event("r0000", 0, 0, 0, "sent", False, "twilio", "SM1", None, "sms"))
    assert await redis.hget(keys.delivery("a16", "r0000"), "H") is None


async def answered_call(t: Transitions, redis, aid: str, level: int, max_attempts: int) -> None:
    """A call (2 s step, then a letter) answered and playing: it holds its step 120 s."""
    call_then_mail = [{"l": [["voice", 0]], "t": 2}, {"l": [["mail", 0]], "t": 600}]
    await t.plan(aid, level, max_attempts, [("r0000", 0, call_then_mail, "planned")], claim=True)
    await event(t, redis, aid, Event("r0000", 0, 0, 0, "sent", False, "twilio", "CA1", None, "voice",
                                     hold_ms=120_000))


async def test_an_answered_call_that_hangs_up_without_a_key_moves_on_as_before(redis):
    # The hold is for a call still playing: once it ends unproven, the step's own
    # deadline decides, with no retry the hold's extra time would have allowed.
    t = Transitions(redis)
    await answered_call(t, redis, "a17", 4, 3)
    assert await event(t, redis, "a17", Event("r0000", 0, 0, 0, "failed", False, "twilio", "CA1", "completed",
                                              "voice", backoff_ms=60_000)) == [b"next:1"]
    assert await redis.hget(keys.delivery("a17", "r0000"), "H") is None


async def test_a_call_that_ended_after_the_prompt_ends_its_hold_and_the_step_decides(redis):
    # They stayed to the prompt (delivered) but an acknowledgement is needed and they pressed
    # nothing; the call ends: the step must not wait out the rest of the hold.
    t = Transitions(redis)
    await answered_call(t, redis, "a18", 5, 1)
    await event(t, redis, "a18", Event("r0000", 0, 0, 0, "delivered", False, "twilio", "CA1", None, "voice"))
    await event(t, redis, "a18", Event("r0000", 0, 0, 0, "failed", False, "twilio", "CA1", "completed", "voice"))
    deadline = int(await redis.hget(keys.delivery("a18", "r0000"), "d"))
    assert await redis.zscore(keys.alert_timers("a18"), "r0000|0|t") == deadline
    assert await redis.hget(keys.delivery("a18", "r0000"), "H") is None
