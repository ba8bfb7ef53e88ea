"""The pump ends an alert that is over (done) or past its expiry (expired),
but never relabels one that an operator or agency cancelled meanwhile: the
cancel can land between the pump's read and its write."""

from __future__ import annotations

from gateway import keys
from gateway.egress import Egress
from gateway.pump import END_FIELDS, Pump
from gateway.transitions import STATES, now_ms


class Published:
    """Records what the pump would hand to the workers (the Celery side is not under test here)."""

    def __init__(self):
        self.closed: list[tuple[str, str]] = []

    def close_open(self, aid: str, state: str) -> None:
        self.closed.append((aid, state))


async def read_then_cancel(redis, aid: str, **fields) -> tuple[list, list]:
    """The pump's read of a running alert, then a cancel that lands before its write."""
    await redis.hset(keys.alert(aid), mapping={"status": "active", "targeted": 2, "fanned": 1,
                                               "created_ms": now_ms(), **fields})
    await redis.hset(keys.alert_counts(aid), mapping={"confirmed": 2})
    await redis.sadd(keys.ACTIVE_ALERTS, aid)
    pump = Pump(redis, Published(), Egress())
    meta = await redis.hmget(keys.alert(aid), *END_FIELDS)
    counts = await redis.hmget(keys.alert_counts(aid), *STATES)
    await redis.hset(keys.alert(aid), "status", "cancelled")
    return pump, meta, counts


async def test_a_cancel_that_lands_while_the_pump_ends_the_alert_keeps_its_label(redis):
    pump, meta, counts = await read_then_cancel(redis, "a1")
    await pump._end_one("a1", meta, counts, now_ms())
    assert await redis.hget(keys.alert("a1"), "status") == b"cancelled"
    assert not await redis.sismember(keys.ACTIVE_ALERTS, "a1")  # it is over all the same


async def test_a_cancel_that_lands_while_the_pump_expires_the_alert_keeps_its_label(redis):
    pump, meta, counts = await read_then_cancel(redis, "a2", expires_ms=now_ms() - 1000)
    await pump._end_one("a2", meta, counts, now_ms())
    assert await redis.hget(keys.alert("a2"), "status") == b"cancelled"
    assert pump.dispatch.closed == []  # the cancel closes the open deliveries as cancelled, not expired


async def test_an_alert_past_its_expiry_is_expired_and_its_open_deliveries_closed(redis):
    await redis.hset(keys.alert("a3"), mapping={"status": "active", "expires_ms": now_ms() - 1000})
    pump = Pump(redis, Published(), Egress())
    meta = await redis.hmget(keys.alert("a3"), *END_FIELDS)
    await pump._end_one("a3", meta, [], now_ms())
    assert await redis.hget(keys.alert("a3"), "status") == b"expired"
    assert pump.dispatch.closed == [("a3", "expired")]


class Handed(Published):
    def __init__(self):
        super().__init__()
        self.fan_outs: list[str] = []

    def fan_out(self, aid: str, turn: int) -> None:
        self.fan_outs.append(aid)


async def test_an_alert_not_yet_fanned_out_is_handed_over_again_ever_less_often(redis):
    created = now_ms()
    await redis.hset(keys.alert("a4"), mapping={"status": "planning", "created_ms": created, "targeted": 0})
    pump = Pump(redis, Handed(), Egress())
    handed_at = []
    for second in range(0, 300):
        now = created + second * 1000
        meta = await redis.hmget(keys.alert("a4"), *END_FIELDS)
        before = len(pump.dispatch.fan_outs)
        await pump._end_one("a4", meta, [], now)
        if len(pump.dispatch.fan_outs) > before:
            handed_at.append(second)
    # Its task may be queued behind minutes of work: each wait as long as all before it, not every 30 s.
    assert handed_at == [31, 63, 127, 255], handed_at
