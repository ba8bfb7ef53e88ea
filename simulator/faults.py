"""Provider faults on demand: outages, errors, rate limits, latency, bad callbacks.

Drills and tests switch them on per provider, from the faults file at start or
through `PUT /_sim/faults`, to prove the gateway falls back, retries and stays
idempotent when providers misbehave. The JSON looks like:

    {"twilio-sms": {"error_rate": 0.1, "duplicate_callbacks": 0.2},
     "fcm": {"outage": "503"}, "printhouse": {"unwritable": true}}
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

PROVIDERS = ("twilio-sms", "twilio-voice", "fcm", "webpush", "printhouse", "smsc")

# What `Faults.admit` tells a handler to do instead of serving the request.
RESET, HANG, OUTAGE, RATE_LIMITED, ERROR = "reset", "hang", "outage", "rate_limited", "error"
OUTAGE_MODES = ("503", "reset", "hang")


@dataclass(frozen=True)
class Fault:
    # "503": every request answered 503; "reset": the connection is dropped;
    # "hang": no answer at all until the client gives up (or the hang ends).
    outage: str | None = None
    # Share of API requests answered with the provider's 5xx error.
    error_rate: float = 0.0
    # Share of accepted messages or calls that end `failed`.
    fail_rate: float = 0.0
    # Requests per second above which the provider answers 429.
    rate_limit: int | None = None
    # Added to every response; wire time, so `time_scale` does not shrink it.
    latency_ms: float = 0.0
    lost_callbacks: float = 0.0
    duplicate_callbacks: float = 0.0
    # How many times in all a duplicated callback arrives.
    duplicate_times: int = 2
    # Every callback held back this long (wire time, like `latency_ms`).
    callback_delay_s: float = 0.0
    # Share of callbacks held back until the next one for the same message.
    reorder_callbacks: float = 0.0
    # The print house's drop box refuses the gateway's files.
    unwritable: bool = False

    @classmethod
    def from_json(cls, provider: str, data: dict[str, Any]) -> "Fault":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{provider}: unknown fault fields {sorted(unknown)}")
        values = dict(data)
        if values.get("outage") is True:
            values["outage"] = "503"
        if values.get("outage") in (False, "", None):
            values["outage"] = None
        elif values["outage"] not in OUTAGE_MODES:
            raise ValueError(f"{provider}: outage must be one of {OUTAGE_MODES} or null")
        for name in ("error_rate", "fail_rate", "lost_callbacks", "duplicate_callbacks", "reorder_callbacks"):
            share = values.get(name, 0.0)
            if not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
                raise ValueError(f"{provider}: {name} must be a number between 0 and 1")
        limit = values.get("rate_limit")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"{provider}: rate_limit must be a non-negative integer or null")
        for name in ("latency_ms", "callback_delay_s"):
            wait = values.get(name, 0.0)
            if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
                raise ValueError(f"{provider}: {name} must be a non-negative number")
        times = values.get("duplicate_times", 2)
        if not isinstance(times, int) or isinstance(times, bool) or not 2 <= times <= 10:
            raise ValueError(f"{provider}: duplicate_times must be an integer from 2 to 10")
        if not isinstance(values.get("unwritable", False), bool):
            raise ValueError(f"{provider}: unwritable must be true or false")
        return cls(**values)


NO_FAULT = Fault()


class Faults:
    def __init__(self, rng: random.Random, spec: dict[str, Any] | None = None) -> None:
        self._rng = rng
        self._faults: dict[str, Fault] = {}
        # Per provider: [current second, requests in it], for the 429 limit.
        self._window: dict[str, list[int]] = {}
        if spec:
            self.set(spec)

    def set(self, spec: dict[str, Any]) -> None:
        """Replaces every fault at once; a bad spec changes nothing."""
        if not isinstance(spec, dict):
            raise ValueError("faults must be a JSON object keyed by provider")
        unknown = set(spec) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"unknown providers {sorted(unknown)}; known: {list(PROVIDERS)}")
        self._faults = {name: Fault.from_json(name, data or {}) for name, data in spec.items()}

    def get(self, provider: str) -> Fault:
        return self._faults.get(provider, NO_FAULT)

    def to_json(self) -> dict[str, Any]:
        return {name: asdict(fault) for name, fault in self._faults.items()}

    def chance(self, share: float) -> bool:
        return share > 0.0 and self._rng.random() < share

    async def admit(self, provider: str) -> str | None:
        """None to serve an API request, else which fault answers it."""
        fault = self._faults.get(provider)
        if fault is None:
            return None
        if fault.outage:
            return {"reset": RESET, "hang": HANG}.get(fault.outage, OUTAGE)
        limited = False
        if fault.rate_limit is not None:
            second = int(time.monotonic())
            window = self._window.setdefault(provider, [second, 0])
            if window[0] != second:
                window[0], window[1] = second, 0
            window[1] += 1
            limited = window[1] > fault.rate_limit
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000.0)
        if limited:
            return RATE_LIMITED
        if self.chance(fault.error_rate):
            return ERROR
        return None


async def drop(faults: Faults, provider: str, verdict: str, request: web.Request) -> None:
    """Ends a request a RESET or HANG verdict stops: at once, or once the client
    gives up waiting (or the hang ends); either way it never gets an answer."""
    transport = request.transport
    while verdict == HANG and faults.get(provider).outage == "hang" and transport and not transport.is_closing():
        await asyncio.sleep(0.1)
    if transport is not None:
        transport.abort()
    raise web.HTTPServiceUnavailable()
