"""An evacuation order posted behind a water cut's backlog of escalations: the
drill behind tests/e2e/test_urgent_first.py and bench/urgent.py.

A water cut (Moderate) goes to `backlog` feature phones whose texts are never
receipted: each SMS step times out after SMS_TIMEOUT_S and the resident is
called. Calls are paced at VOICE_CPS a second, so the escalations wait, in the
pump's timer sets and the broker's `steps` queue, for about backlog / VOICE_CPS
seconds. Once the first call is placed, an evacuation order (Extreme,
Immediate) goes to `urgent` other feature phones. The simulator's records say
when each resident was first sent to.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import orjson
import redis.asyncio as aioredis

from gateway.agencies import create_agency

from process_stack import ProcessStack

SMS_TIMEOUT_S = 2
VOICE_CPS = 10
# Tasks of 20: a worker busy with the water cut's paced calls is free again in seconds.
SETTINGS = {"GATEWAY_VOICE_CPS_PER_SENDER": str(VOICE_CPS), "GATEWAY_VOICE_CPS_PER_PROVIDER": str(VOICE_CPS),
            "GATEWAY_BATCH_SIZE": "20"}
WATER_CUT_DISTRICT, EVACUATION_DISTRICT = "11110", "11140"
GIVE_UP_S = 300


@dataclass
class Figures:
    backlog: int  # water-cut residents to be called
    first_s: float  # from posting the evacuation to its first send
    last_first_s: float  # ... to the first attempt of its last resident
    backlog_left: int  # water-cut calls still to come at that moment
    drained_s: float | None = None  # ... to the water cut's last call, when waited for


def residents(count: int, prefix: str, district: str, sms: dict) -> tuple[list[dict], list[dict]]:
    """(residents, simulator behaviours): feature phones in `district`, answering calls."""
    people, behaviours = [], []
    for i in range(count):
        rid, number = f"{prefix}{i:05d}", f"+8210{district[-3:]}{i:05d}"
        people.append({"id": rid, "languages": ["ko"], "district": district,
                       "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]})
        behaviours.append({"resident": rid, "phones": [number], "sms": sms, "voice": {"answer": "human"}})
    return people, behaviours


WATER_CUT = {
    "event": "Water cut", "severity": "Moderate", "urgency": "Expected",
    "content": {"ko": {"headline": "단수 안내", "body": "내일 오전 9시부터 단수됩니다."}},
    "audience": {"districts": [WATER_CUT_DISTRICT]},
    "policy": {"channels": ["sms", "voice"], "step_timeouts": {"sms": SMS_TIMEOUT_S, "voice": 120}},
}
EVACUATION = {
    "event": "Evacuation", "severity": "Extreme", "urgency": "Immediate",
    "content": {"ko": {"headline": "대피 명령", "body": "즉시 대피하십시오."}},
    "audience": {"districts": [EVACUATION_DISTRICT]},
}


async def drill(stack: ProcessStack, backlog: int, urgent: int, *, until_drained: bool = False) -> Figures:
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        async with aiohttp.ClientSession() as http:
            _, key = await create_agency(redis, "Seoul Metropolitan Government", rate_per_s=100_000)
            auth = {"Authorization": f"Bearer {key}"}
            # A receipt 10,000 simulated seconds late never comes within the step.
            cut, cut_ways = residents(backlog, "w", WATER_CUT_DISTRICT, {"outcome": "delivered", "delay_s": 10_000.0})
            evac, evac_ways = residents(urgent, "e", EVACUATION_DISTRICT,
                                        {"outcome": "delivered", "reply": "1", "reply_after_s": 1.0})
            body = b"\n".join(orjson.dumps(r) for r in cut + evac)
            async with http.post(f"{stack.api}/v1/residents/import", data=body,
                                 headers={**auth, "Content-Type": "application/x-ndjson"}) as r:
                assert r.status == 200, await r.text()
            await stack.teach_simulator(http, cut_ways + evac_ways)

            async def post(alert: dict) -> None:
                async with http.post(f"{stack.api}/v1/alerts", json=alert, headers=auth) as r:
                    assert r.status == 202, await r.text()

            await post(WATER_CUT)
            await _until(stack, http, lambda calls, _: calls)
            posted = time.time()
            await post(EVACUATION)
            records = await _until(stack, http, lambda _, firsts: len(firsts) == urgent)
            firsts = _evacuation_firsts(records)
            last_first = max(firsts.values())
            figures = Figures(backlog, min(firsts.values()) - posted, last_first - posted,
                              backlog - sum(1 for at in _water_cut_calls(records) if at <= last_first))
            if until_drained:
                records = await _until(stack, http, lambda calls, _: len(calls) == backlog)
                figures.drained_s = max(_water_cut_calls(records)) - posted
            return figures
    finally:
        await redis.aclose()


def _water_cut_calls(records: list[dict]) -> list[float]:
    return [r["created_at"] for r in records if r["resident"].startswith("w") and r["channel"] == "voice"]


def _evacuation_firsts(records: list[dict]) -> dict[str, float]:
    firsts: dict[str, float] = {}
    for r in records:
        if r["resident"].startswith("e"):
            firsts[r["resident"]] = min(firsts.get(r["resident"], r["created_at"]), r["created_at"])
    return firsts


async def _until(stack: ProcessStack, http: aiohttp.ClientSession, done) -> list[dict]:
    """The simulator's records once `done(water-cut call times, evacuation first sends)` holds."""
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        records = [r for r in await stack.simulator_records(http) if r.get("resident")]
        if done(_water_cut_calls(records), _evacuation_firsts(records)):
            return records
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {GIVE_UP_S} s: {len(records)} records\n{stack.tail('worker1')}")
        await asyncio.sleep(0.2)
