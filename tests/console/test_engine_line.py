"""Every console page says how the delivery engine is doing, so an operator
sees a fault while it lasts: Redis answering or not, the tasks waiting in the
broker's queues, how late the oldest due timer is; the live stream keeps it
current."""

from __future__ import annotations

import asyncio
import re

import orjson

from gateway import keys
from tests.console.town import sign_in


async def timers_late_by(town, seconds: int) -> None:
    """A running alert whose oldest timer fell due `seconds` ago, by Redis's clock."""
    now_s, micros = await town.redis.time()
    await town.redis.sadd(keys.ACTIVE_ALERTS, "late1")
    await town.redis.zadd(keys.alert_timers("late1"), {"r1|0|t": now_s * 1000 + micros // 1000 - seconds * 1000,
                                                        "r2|0|t": now_s * 1000 + 60_000})


async def test_every_console_page_says_how_late_the_oldest_due_timer_is(town, client):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    await timers_late_by(town, 40)
    for path in ("/ops/alerts", "/ops/providers", "/ops/reach"):
        page = await (await client.get(path)).text()
        line = page[page.index("Delivery engine"):]
        assert "Redis answering" in line, path
        late = re.search(r"oldest due timer: <span data-engine=\"lag\">(\d+) s late", line)
        assert late and 39 <= int(late.group(1)) <= 45, (path, line[:400])


async def test_the_live_stream_carries_the_engine_health_every_second(town, client):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    await timers_late_by(town, 40)
    response = await client.get("/ops/live")
    seen = b""
    async with asyncio.timeout(10):
        while seen.count(b"event: engine") < 2:
            seen += await response.content.readany()
    response.close()
    data = seen.split(b"event: engine\ndata: ", 1)[1].split(b"\n", 1)[0]
    health = orjson.loads(data)
    assert health["redis_up"] is True
    assert health["timers"] == 2
    assert 39 <= health["timer_lag_s"] <= 45


async def test_a_print_house_drop_box_that_fails_shows_on_the_console_and_metrics_while_it_does(town, client):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    metrics = await (await client.get("/metrics")).text()
    assert "gateway_print_house_up 1.0" in metrics
    # What the mail batcher writes when a round fails (channels/mail.py).
    now_s, _ = await town.redis.time()
    await town.redis.set(keys.PRINT_HOUSE_DOWN, (now_s - 30) * 1000, ex=60)
    await asyncio.sleep(1.1)  # past the engine line's one-second reading
    page = await (await client.get("/ops/alerts")).text()
    found = re.search(r"print house's drop box NOT answering for (\d+) s: letters wait", page)
    assert found and 29 <= int(found.group(1)) <= 40, page[page.index("Delivery engine"):][:600]
    assert "gateway_print_house_up 0.0" in await (await client.get("/metrics")).text()
