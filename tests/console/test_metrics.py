"""/metrics: what Prometheus scrapes, read from Redis at scrape time."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway import keys, metrics
from gateway.samples import phone, resident
from gateway.transitions import Event, Transitions
from tests.console.town import heat_wave

A = ("cap_status", "Actual")


def samples(body: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_deliveries_attempts_and_confirmation_times(town, client):
    await town.add(resident("a", phone("+821055500001")), resident("b", phone("+821055500002")),
                   resident("c", phone("+821055500003")))
    town.sms.script.update({"a": "delivered", "b": "failed", "c": "sent"})
    town.voice.script.update({"b": "delivered"})
    aid = await town.post_alert(heat_wave({"residents": ["a", "b", "c"]}))
    await town.redis.zadd(keys.alert_timers(aid), {"late|0|t": 1})
    r = await client.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    m = samples(await r.text())
    assert m[("gateway_deliveries", (A, ("state", "confirmed")))] == 2
    assert m[("gateway_deliveries", (A, ("state", "in_progress")))] == 1
    assert m[("gateway_deliveries_in_progress", (A, ("channel", "sms")))] == 1
    assert m[("gateway_deliveries_confirmed", (A, ("channel", "voice")))] == 1
    assert m[("gateway_attempt_events_total", (A, ("channel", "sms"), ("status", "failed")))] == 1
    assert m[("gateway_fallbacks_total", (A,))] == 1
    assert m[("gateway_provider_attempts_total", (("channel", "sms"), ("outcome", "failed"),
                                                  ("provider", "fake-sms")))] == 1
    assert m[("gateway_time_to_confirmation_seconds_count", (A, ("channel", "sms")))] == 1
    assert m[("gateway_timer_lag_seconds", ())] > 1000  # the made-up timer is due since 1970
    assert m[("gateway_alerts", (A, ("status", "active")))] == 1


async def test_a_drill_is_counted_apart_from_real_alerts(town, client):
    await town.add(resident("a", phone("+821055500001")), resident("d", phone("+821055500002")))
    town.sms.script.update({"a": "delivered", "d": "delivered"})
    await town.post_alert(heat_wave({"residents": ["a"]}))
    await town.post_alert(heat_wave({"residents": ["d"]}, status="Exercise"))
    m = samples(await (await client.get("/metrics")).text())
    drill = ("cap_status", "Exercise")
    assert m[("gateway_deliveries", (A, ("state", "confirmed")))] == 1
    assert m[("gateway_deliveries", (drill, ("state", "confirmed")))] == 1
    assert m[("gateway_deliveries_confirmed", (drill, ("channel", "sms")))] == 1
    assert m[("gateway_alerts", (A, ("status", "active")))] == 1
    assert m[("gateway_alerts", (drill, ("status", "active")))] == 1


async def test_a_finished_alert_is_tallied_once(town, client):
    await town.add(resident("a", phone("+821055500001")))
    town.sms.script["a"] = "delivered"
    aid = await town.post_alert(heat_wave({"residents": ["a"]}))
    await town.redis.hset(keys.alert(aid), "status", "done")
    await town.redis.srem(keys.ACTIVE_ALERTS, aid)
    await client.get("/metrics")
    assert await town.redis.exists(keys.tallies(aid))


async def test_with_a_metrics_token_only_a_scraper_holding_it_reads_the_metrics(town):
    town.settings = town.settings.with_(metrics_token="scrape-" + "x" * 24)
    async with TestClient(TestServer(town.app())) as client:
        await _scrape_with_token(client)


async def _scrape_with_token(client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer scrape-" + "x" * 24 + "é"}):
        r = await client.get("/metrics", headers=headers)
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert r.content_type == "application/problem+json" and "GATEWAY_METRICS_TOKEN" in (await r.json())["detail"]
    r = await client.get("/metrics", headers={"Authorization": "Bearer scrape-" + "x" * 24})
    assert r.status == 200 and "gateway_timers_pending" in await r.text()


async def test_a_scrape_during_a_big_alert_reads_a_sample_of_it_and_answers_at_once(town, client):
    """Under a storm /metrics must answer while the storm lasts: a running alert
    costs a scrape the same at thirty thousand residents as at a thousand."""
    await town.add(resident("a", phone("+821055500001")))
    town.sms.script["a"] = "sent"
    aid = await town.post_alert(heat_wave({"residents": ["a"]}))
    big = 30_000
    steps = [{"l": [["sms", 0]], "t": 600}, {"l": [["voice", 0]], "t": 600}]
    t = Transitions(town.redis)
    await t.plan(aid, 4, 2, [(f"r{i:05d}", i + 1, steps, "planned") for i in range(big)], claim=True)
    pipe = town.redis.pipeline(transaction=False)
    await t.event(pipe, aid, [Event(f"r{i:05d}", 0, 0, 0, "failed" if i % 2 else "queued", False, "fake-sms",
                                    f"SM{i}", "", "sms") for i in range(big)])
    await pipe.execute()
    before = (await town.redis.info("commandstats"))["cmdstat_hmget"]["calls"]
    started = time.monotonic()
    m = samples(await (await client.get("/metrics")).text())
    took = time.monotonic() - started
    reads = (await town.redis.info("commandstats"))["cmdstat_hmget"]["calls"] - before
    assert reads < 5 * metrics.RUNNING_SAMPLE < big
    assert took < 3.0
    # Figures for the whole alert, from the sample, scaled.
    assert m[("gateway_deliveries_in_progress", (A, ("channel", "sms")))] == big + 1
    failed = m[("gateway_provider_attempts_total", (("channel", "sms"), ("outcome", "failed"),
                                                   ("provider", "fake-sms")))]
    assert abs(failed - big / 2) < big / 20
