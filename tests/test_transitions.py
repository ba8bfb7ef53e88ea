"""Batch ops of transitions.lua: many deliveries a call, a reply for each, in order."""

from __future__ import annotations

from gateway import keys
from gateway.transitions import LUA_CHUNK, Transitions

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
