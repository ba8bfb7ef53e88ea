"""Signed webhooks to the gateway, sent the way Twilio sends them.

Every request carries `X-Twilio-Signature` (HMAC-SHA1 of the full URL followed
by the sorted POST parameters, base64, keyed with the account's auth token), so
the gateway's `RequestValidator` check is exercised for real. Status callbacks
go through `emit`, which applies the provider's callback faults (lost,
duplicated, reordered) and retries with back-off when the gateway answers 5xx
or cannot be reached.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from hashlib import sha1
from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from simulator.app import Simulator

USER_AGENT = "TwilioProxy/1.1"
FORM = "application/x-www-form-urlencoded"
API_VERSION = "2010-04-01"

# Formatting a date costs more than serving a request; one string per second will do.
_date_cache: list = [0, ""]


def rfc2822_now() -> str:
    """Now as Twilio writes dates: `Thu, 24 Aug 2023 05:01:45 +0000`."""
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache[0], _date_cache[1] = second, format_datetime(datetime.fromtimestamp(second, timezone.utc))
    return _date_cache[1]


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), sha1).digest()
    return base64.b64encode(digest).decode()


_UNRESERVED = re.compile(r"^[A-Za-z0-9_.~-]*$")


def form_encode(params: Mapping[str, str]) -> str:
    """urlencode() with a fast path: most values need no quoting at all."""
    return "&".join(
        f"{k if _UNRESERVED.match(k) else quote_plus(k)}={v if _UNRESERVED.match(v) else quote_plus(v)}"
        for k, v in params.items()
    )


def with_query(url: str, params: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{form_encode(params)}" if params else url


class Callbacks:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self._timeout = aiohttp.ClientTimeout(total=sim.config.callback_timeout_s)
        # A reordered callback per message or call, released after the next one.
        self._held: dict[str, tuple[str, dict[str, str], str, str]] = {}

    def emit(
        self, provider: str, key: str, url: str, params: dict[str, str], method: str = "POST", final: bool = False
    ) -> None:
        """Sends a status callback for message or call `key`, through the provider's faults."""
        sim, stats = self.sim, self.sim.stats
        fault = sim.faults.get(provider)
        held = self._held.pop(key, None)
        token = f"{sim.rng.getrandbits(64):016x}"
        batch = []
        if sim.faults.chance(fault.lost_callbacks):
            stats["callbacks.lost"] += 1
        elif not final and held is None and sim.faults.chance(fault.reorder_callbacks):
            stats["callbacks.reordered"] += 1
            self._held[key] = (url, params, method, token)
        else:
            batch.append((url, params, method, token))
            if sim.faults.chance(fault.duplicate_callbacks):
                stats["callbacks.duplicated"] += 1
                batch.append((url, params, method, token))
        if held is not None:
            batch.append(held)
        if batch:
            sim.spawn(self._deliver_in_order(batch))

    def release(self, key: str) -> None:
        """Sends what is still held back for `key` (its last callback was not asked for)."""
        held = self._held.pop(key, None)
        if held is not None:
            self.sim.spawn(self._deliver_in_order([held]))

    def clear(self) -> None:
        self._held.clear()

    async def _deliver_in_order(self, batch: list[tuple[str, dict[str, str], str, str]]) -> None:
        for url, params, method, token in batch:
            await self.deliver(url, params, method, token)

    async def deliver(self, url: str, params: dict[str, str], method: str = "POST", token: str = "") -> bool:
        """One webhook, retried with doubling back-off; False when the simulator gave up."""
        sim, stats = self.sim, self.sim.stats
        tries = max(1, sim.config.callback_tries)
        for attempt in range(tries):
            if attempt:
                stats["callbacks.retried"] += 1
                await asyncio.sleep(sim.scaled(sim.config.callback_backoff_s * 2 ** (attempt - 1)))
            try:
                status, _ = await self.request(url, params, method, token)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                stats["callbacks.failed"] += 1
                stats[f"callbacks.failed.{type(e).__name__}"] += 1
                continue
            if status < 500:
                stats["callbacks.sent" if status < 400 else "callbacks.rejected"] += 1
                return status < 400
            stats["callbacks.failed"] += 1
        stats["callbacks.gave_up"] += 1
        sim.records.lost_callbacks.append({"url": url, "params": params, "method": method, "tries": tries})
        return False

    async def request(
        self, url: str, params: dict[str, str], method: str = "POST", token: str = ""
    ) -> tuple[int, str]:
        """A signed request; GET carries the parameters in the signed URL."""
        sim = self.sim
        headers = {"User-Agent": USER_AGENT}
        if token:
            # Twilio's header for spotting retried and duplicated webhooks.
            headers["I-Twilio-Idempotency-Token"] = token
        if method.upper() == "GET":
            url, data = with_query(url, params), None
            headers["X-Twilio-Signature"] = signature(sim.config.auth_token, url, {})
        else:
            # Encoded here: aiohttp's FormData costs more than the rest of the request.
            data = form_encode(params).encode()
            headers["Content-Type"] = FORM
            headers["X-Twilio-Signature"] = signature(sim.config.auth_token, url, params)
        # encoded=True: the URL goes out byte for byte as signed, not re-quoted by yarl.
        target = URL(url, encoded=True)
        async with sim.http.request(method.upper(), target, data=data, headers=headers, timeout=self._timeout) as resp:
            return resp.status, await resp.text()
