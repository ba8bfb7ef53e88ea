"""What the tests on the whole stack (tests/api, tests/e2e) share: the
simulator's Twilio account, a free port, how many sends are in flight, sample
residents and alerts with fast steps, and one agency API call. A module of its
own, because `from conftest import ...` finds whichever conftest pytest
imported last (tests/simulator has one too)."""

from __future__ import annotations

import socket

import orjson

from gateway import keys, samples

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"
FROM = "+15005550006"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def in_flight(redis, aid: str, rids: list[str]) -> int:
    """Sends claimed whose provider answer was never recorded."""
    count = 0
    for start in range(0, len(rids), 1000):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[start:start + 1000]:
            pipe.hmget(keys.delivery(aid, rid), "c", "b")
        for claimed, best in await pipe.execute():
            if claimed is not None and best in (None, b"0"):
                count += 1
    return count


def sms_residents(count: int, prefix: str, number_prefix: str) -> tuple[list[dict], list[dict]]:
    """Feature-phone residents of district 11110 whose texts are delivered, and the
    simulator's behaviour for them: (residents, behaviours) for `City.import_ndjson`."""
    residents, behaviours = [], []
    for i in range(count):
        rid, number = f"{prefix}{i:05d}", f"{number_prefix}{i:06d}"
        residents.append(samples.resident(rid, samples.phone(number)))
        behaviours.append({"resident": rid, "phones": [number], "sms": {"outcome": "delivered"}})
    return residents, behaviours


# Delivered closes a delivery: one text each, so a second one is a duplicate.
SMS_FLOOD = samples.flood({"districts": [samples.DISTRICT]},
                          policy={"channels": ["sms"], "confirmation": "delivered", "step_timeouts": {"sms": 240}})


# Steps short enough for a test's patience (seconds).
FAST = {"sms": 2, "voice": 4, "push": 2, "mail": 2}


def heat_wave(audience: dict, severity: str = "Moderate", **fields) -> dict:
    """The sample heat wave with fast steps; `fields` replace top-level fields (a whole `policy` too)."""
    return samples.heat_wave(audience, severity=severity, policy={"step_timeouts": FAST}) | fields


async def call(city, method, path, *, key=None, **kw):
    """(status, content type, JSON body or None) of one agency API request, with the city's key or `key`."""
    headers = {"Authorization": f"Bearer {key or city.key}", **kw.pop("headers", {})}
    async with city.http.request(method, f"{city.api}{path}", headers=headers, **kw) as r:
        body = await r.read()
        return r.status, r.headers.get("Content-Type", ""), (orjson.loads(body) if body else None)
