"""Polygons and circles reach exactly the residents inside them, and a preview says so at once."""

from __future__ import annotations

import time

import numpy as np
import pytest
from capkit import call

from bench.audience import (
    FLOOD_CIRCLE,
    HEAT_POLYGON,
    L_POLYGON,
    brute_force,
    store,
    synthetic_residents,
)
from gateway.agencies import create_agency
from gateway.alerts import resolve_audience
from gateway.crypto import Vault

pytestmark = pytest.mark.e2e


def vault(city) -> Vault:
    return Vault.of(city.stack.settings)


async def preview(city, body: dict, key: str | None = None) -> tuple[int, dict]:
    return await call(city, "POST", "/v1/audience/preview", json=body, key=key)


async def test_a_polygon_alert_reaches_exactly_the_residents_inside_it(city):
    town = synthetic_residents(160, seed=9, prefix="p")
    for i, r in enumerate(town):  # every one a feature phone the simulator delivers to
        r["contacts"] = [{"type": "phone", "number": f"+821077{i:06d}", "handset": "feature_phone"}]
        r["consent"] = {"non_emergency": True}
    await store(city.redis, town, vault(city))
    city.sim.behaviour.add_many([{"resident": r["id"], "phones": [r["contacts"][0]["number"]]} for r in town])
    inside = brute_force(town, polygon=L_POLYGON)
    assert 5 < len(inside) < len(town)
    aid = await city.post_alert({
        "event": "Gas leak", "severity": "Moderate",
        "content": {"ko": {"headline": "가스 누출", "body": "창문을 닫으세요."}},
        "audience": {"areas": [{"polygon": L_POLYGON}]}, "policy": {"step_timeouts": {"sms": 3}}})
    summary = await city.settled(aid)
    assert summary["targeted"] == len(inside) and summary["deliveries"]["confirmed"] == len(inside)
    reached = {r["id"] for r in town if city.received(r["id"])}
    assert reached == inside


async def test_the_preview_counts_whom_an_area_reaches_and_how(city):
    town = synthetic_residents(5000, seed=4)
    await store(city.redis, town, vault(city))
    status, out = await preview(city, {"audience": {"areas": [{"polygon": HEAT_POLYGON}]}, "severity": "Moderate"})
    assert status == 200, out
    inside = brute_force(town, polygon=HEAT_POLYGON)
    assert out["targeted"] == len(inside)
    assert sum(out["by_district"].values()) == out["targeted"]
    assert set(out["by_district"]) <= {"11110", "11140", "11170"}
    assert sum(out["by_first_channel"].values()) == out["reachable"]
    assert out["reachable"] + out["unreachable"] + out["opted_out"] == out["targeted"]
    refused = sum(1 for r in town if r["id"] in inside and not r["consent"]["non_emergency"])
    assert out["opted_out"] == refused  # Moderate needs consent to non-emergency alerts
    assert "by push first" in out["summary"] and "feature phones by SMS" in out["summary"]
    print(f"\npreview of {len(town):,} residents: {out['took_ms']} ms: {out['summary']}")

    status, severe = await preview(city, {"audience": {"areas": [{"polygon": HEAT_POLYGON}]}, "severity": "Extreme",
                                          "urgency": "Immediate"})
    assert severe["opted_out"] == 0 and "push+sms" in severe["by_first_channel"]
    status, drill = await preview(city, {"audience": {"areas": [{"circle": FLOOD_CIRCLE}]}, "status": "Exercise"})
    volunteers = {r["id"] for r in town if r["consent"]["drills"]}
    assert drill["targeted"] == len(brute_force(town, circle=FLOOD_CIRCLE) & volunteers)


async def test_the_preview_refuses_what_an_alert_would_refuse(city):
    status, problem = await preview(city, {"audience": {"areas": [{"polygon": HEAT_POLYGON[:-1]}]}, "colour": "red"})
    assert status == 422
    assert {e["field"] for e in problem["errors"]} == {"/colour"}
    status, problem = await preview(city, {"audience": {"areas": [{"polygon": HEAT_POLYGON[:-1]}]}})
    assert status == 422 and problem["errors"][0]["field"] == "/audience/areas/0/polygon"
    await store(city.redis, synthetic_residents(300, seed=2), vault(city))
    _, gangnam_key = await create_agency(city.redis, "Gangnam-gu office", districts=["11680"], rate_per_s=1000)
    status, problem = await preview(city, {"audience": {"areas": [{"polygon": HEAT_POLYGON}]}}, key=gangnam_key)
    assert status == 422 and problem["errors"][0]["field"] == "/audience/areas/0/polygon"
    status, own = await preview(city, {"audience": {"districts": ["11680"]}}, key=gangnam_key)
    assert status == 200 and set(own["by_district"]) == {"11680"}


@pytest.mark.slow
async def test_a_preview_for_100000_residents_matches_brute_force_in_under_a_second(city):
    town = synthetic_residents(100_000, seed=3)
    started = time.perf_counter()
    await store(city.redis, town, vault(city))
    print(f"\nstored {len(town):,} residents in {time.perf_counter() - started:.1f} s")
    body = {"audience": {"areas": [{"polygon": HEAT_POLYGON}, {"polygon": L_POLYGON}]}, "severity": "Severe"}
    expected = brute_force(town, polygon=HEAT_POLYGON) | brute_force(town, polygon=L_POLYGON)

    started = time.perf_counter()
    status, first = await preview(city, body)
    print(f"first preview after the import (the API's index reads 100,000 changes): "
          f"{time.perf_counter() - started:.2f} s")
    assert status == 200 and first["targeted"] == len(expected)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        status, out = await preview(city, body)
        timings.append(time.perf_counter() - started)
        assert out["targeted"] == len(expected)
    print(f"preview of 100,000 residents: {min(timings) * 1000:.0f}-{max(timings) * 1000:.0f} ms round trip "
          f"({out['took_ms']} ms in the handler): {out['summary']}")
    assert max(timings) < 1.0

    # The fan-out resolves the same audience through Redis (GEOSEARCH, then the exact test).
    started = time.perf_counter()
    fanned = await resolve_audience(city.redis, body["audience"], drill=False)
    print(f"fan-out resolution: {len(fanned):,} residents in {time.perf_counter() - started:.2f} s")
    assert set(fanned) == expected and len(fanned) == len(expected)
    assert np.isclose(sum(out["by_district"].values()), len(expected))
