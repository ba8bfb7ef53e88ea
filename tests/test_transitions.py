"""Batch ops of transitions.lua: many deliveries a call, a reply for each, in order."""

from __future__ import annotations

from gateway import keys
from gateway.deliveries import awaiting_receipt
from gateway.transitions import LUA_CHUNK, Event, Transitions

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
    assert {legs for _, legs in claimed} == {b'[["sms",0]]'}
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


def test_only_legs_a_provider_accepted_and_never_settled_await_a_receipt():
    lines = ["1|0|0|*|claimed|||", "2|0|0|0|queued|twilio|SM1|", "3|0|0|1|queued|twilio|CA1|",
             "4|0|0|1|failed|twilio|CA1|busy", "5|0|0|2|failed|twilio||20500", "6|1|0|0|queued|twilio|SM9|"]
    assert awaiting_receipt(lines, 0, 0) == [(0, "twilio", "SM1")]
    assert awaiting_receipt(lines, 1, 0) == [(0, "twilio", "SM9")]
    assert awaiting_receipt(lines + ["7|0|0|0|delivered|twilio|SM1|"], 0, 0) == []
