"""Agency callbacks: the gateway tells an agency how its alerts are going.

An agency registers a URL (`PUT /v1/agency/callback`). For every alert it
posts afterwards, the gateway POSTs JSON batches of events to that URL:

- `delivery`: one per resident, when their delivery reaches its terminal
  state (confirmed, unreachable, cancelled, expired, opted_out), with the
  confirming channel and level, or the reason per step it did not work;
- `alert.progress`: the alert's summary, every `PROGRESS_EVERY_S` while it runs;
- `alert.final`: the summary once every delivery has ended (always last).

How they flow: transitions.lua appends each terminal state to the alert's
stream `{a:<id>}:events` (when the alert hash has `cb`); the pump adds the
summaries to the same stream (its `summary` op queues the final one once);
the `Courier`, run by the pump leader, sends each alert's stream in order,
one batch at a time, and deletes what the agency accepted. A batch that fails is tried again after 2, 4, 8... seconds
(at most 10 minutes apart); after `MAX_ATTEMPTS` it becomes a dead letter the
agency can list and replay, and the queue moves on. Delivery is at least
once: each event has an `id` to drop repeats by.

Every POST is signed: `X-Gateway-Timestamp: <unix seconds>` and
`X-Gateway-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with
the secret>`. `verify` below is the recipe agencies follow.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime, timezone

import aiohttp
import orjson

from . import deliveries, keys
from .agencies import get_callback
from .alerts import Alerts
from .deliveries import delivery_view
from .egress import Egress
from .transitions import Transitions, now_ms, text

log = logging.getLogger("gateway.callbacks")

EVENTS_PER_POST = 500
MAX_ATTEMPTS = 10
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 600.0
PROGRESS_EVERY_S = 30.0
TIMEOUT_S = 10.0
DEAD_KEPT = 10_000
# How often the pump looks at the queues; sends themselves run beside it.
LOOK_EVERY_S = 0.2
USER_AGENT = "accessibility-gateway-callbacks/1"


# Signing ----------------------------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Gateway-Timestamp": timestamp, "X-Gateway-Signature": signature(secret, timestamp, body)}


def verify(secret: str, timestamp: str, signature_header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse old timestamps."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, s.strip()) for s in signature_header.split(","))


# Events -----------------------------------------------------------------------


def _iso(ms: int | str | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, timezone.utc).isoformat(timespec="milliseconds")


async def add_summary(redis, aid: str, kind: str) -> bool:
    """Queue the alert's summary (`progress` or `final`) behind its delivery events; False if not its time."""
    summary = await Alerts(redis).summary(aid)
    return await Transitions(redis).queue_summary(aid, kind, orjson.dumps(summary))


async def compose(redis, aid: str, root: str, entries: list) -> list[dict]:
    """Stream entries as the events the agency receives."""
    rids = [text(f[b"r"]) for _, f in entries if b"r" in f]
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hgetall(keys.delivery(aid, rid))
    details = {}
    unreachable = []
    for rid, d in zip(rids, await pipe.execute()):
        d = {text(k): text(v) for k, v in d.items()}
        details[rid] = d
        if d.get("s") == "unreachable":
            unreachable.append(rid)
    for rid in unreachable:  # only they need the reason per step
        details[rid]["reasons"] = delivery_view(rid, details[rid], deliveries.history_lines(details[rid].get("h")))[
            "reasons"]
    events = []
    for entry_id, f in entries:
        event: dict = {"id": f"{aid}/{text(entry_id)}", "alert": root}
        if aid != root:
            event["update_round"] = aid
        if b"r" in f:
            rid = text(f[b"r"])
            d = details.get(rid, {})
            event.update({"type": "delivery", "resident": rid, "state": text(f[b"s"]),
                          "at": _iso(d.get("e")) or _iso(text(entry_id).split("-")[0])})
            if d.get("y"):
                channel, level = d["y"].split(":")
                event["confirmed_by"] = {"channel": channel, "level": level}
            if "reasons" in d:
                event["reasons"] = d["reasons"]
        else:
            event.update({"type": f"alert.{text(f[b't'])}", "summary": orjson.loads(f[b"j"])})
        events.append(event)
    return events


# Sending ----------------------------------------------------------------------


def backoff_s(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))


class Courier:
    """Sends every alert's callback events, in order, retrying and dead-lettering.

    The pump calls `tick()` while it leads; each alert's queue is sent by one
    task at a time, so its events stay in order.
    """

    def __init__(self, redis, egress: Egress):
        self.redis, self.egress = redis, egress
        self._http: aiohttp.ClientSession | None = None
        self._sending: dict[str, asyncio.Task] = {}
        self._looked = 0.0
        self._closing = False

    async def tick(self) -> bool:
        if time.monotonic() - self._looked < LOOK_EVERY_S:
            return False
        self._looked = time.monotonic()
        aids = [text(a) for a in await self.redis.smembers(keys.CALLBACK_ALERTS)]
        if not aids:
            return False
        pipe = self.redis.pipeline(transaction=False)
        for aid in aids:
            pipe.hmget(keys.alert(aid), "status", "cb_progress_ms", "cb_final", "parent")
            pipe.sismember(keys.ACTIVE_ALERTS, aid)
            pipe.xlen(keys.alert_events(aid))
            pipe.hget(keys.alert_callback(aid), "next_ms")
        rows = await pipe.execute()
        now = now_ms()
        pending = {aid: rows[4 * i + 2] for i, aid in enumerate(aids)}
        for i, aid in enumerate(aids):
            (status, progress_ms, final, parent), active, queued, next_ms = rows[4 * i:4 * i + 4]
            status = text(status) if status else None
            if status is None:
                await self.redis.srem(keys.CALLBACK_ALERTS, aid)
                continue
            if final:
                if not queued and aid not in self._sending:
                    await self._forget(aid)
                    continue
            elif status in ("done", "cancelled", "expired") and not active:
                queued += await add_summary(self.redis, aid, "final")
            elif status == "active" and now - int(progress_ms or 0) >= PROGRESS_EVERY_S * 1000:
                queued += await add_summary(self.redis, aid, "progress")
            # An update round waits for its alert's own events: a resident hears of
            # their first delivery before the round's.
            parent = text(parent) if parent else None
            if parent and pending.get(parent, 0):
                continue
            if queued and aid not in self._sending and now >= int(next_ms or 0):
                self._sending[aid] = asyncio.create_task(self._drain(aid, parent or aid))
        return False

    async def _forget(self, aid: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.srem(keys.CALLBACK_ALERTS, aid)
        pipe.delete(keys.alert_callback(aid), keys.alert_events(aid))
        await pipe.execute()

    async def _drain(self, aid: str, root: str) -> None:
        try:
            while not self._closing and await self._send_batch(aid, root):
                pass
        except Exception:
            log.exception("callbacks of %s failed", aid)
        finally:
            self._sending.pop(aid, None)

    async def _send_batch(self, aid: str, root: str) -> bool:
        """Send the oldest batch; True if it went and more may follow."""
        r = self.redis
        entries = await r.xrange(keys.alert_events(aid), "-", "+", count=EVENTS_PER_POST)
        if not entries:
            return False
        ids = [e[0] for e in entries]
        agency_id = text(await r.hget(keys.alert(root), "agency") or b"")
        callback = await get_callback(r, agency_id) if agency_id else None
        if callback is None:  # the agency withdrew its URL: nobody to tell
            await r.xdel(keys.alert_events(aid), *ids)
            return True
        url, secret = callback
        events = await compose(r, aid, root, entries)
        error = await post(self.http(), url, secret, {"events": events})
        if error is None:
            pipe = r.pipeline(transaction=False)
            pipe.xdel(keys.alert_events(aid), *ids)
            pipe.delete(keys.alert_callback(aid))
            await pipe.execute()
            return True
        attempts = await r.hincrby(keys.alert_callback(aid), "attempts", 1)
        if attempts >= MAX_ATTEMPTS:
            letter = {"id": "dl_" + secrets.token_hex(8), "alert": root, "url": url, "attempts": attempts,
                      "failed_at": _iso(now_ms()), "last_error": error, "events": events}
            pipe = r.pipeline(transaction=True)
            pipe.lpush(keys.callback_dead(agency_id), orjson.dumps(letter))
            pipe.ltrim(keys.callback_dead(agency_id), 0, DEAD_KEPT - 1)
            pipe.xdel(keys.alert_events(aid), *ids)
            pipe.delete(keys.alert_callback(aid))
            await pipe.execute()
            log.warning("callbacks of %s to %s dead-lettered after %d attempts: %s", aid, url, attempts, error)
            return True
        await r.hset(keys.alert_callback(aid), mapping={
            "next_ms": now_ms() + int(backoff_s(attempts) * 1000), "last_error": error})
        return False

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = self.egress.session(TIMEOUT_S)
        return self._http

    async def close(self) -> None:
        # Told first: on Python 3.11 a cancel can be lost inside redis-py (tests/test_stopping.py).
        self._closing = True
        for task in list(self._sending.values()):
            task.cancel()
        await asyncio.gather(*self._sending.values(), return_exceptions=True)
        if self._http is not None:
            await self._http.close()


async def post(http: aiohttp.ClientSession, url: str, secret: str, payload: dict) -> str | None:
    """One signed POST; None if the agency took it (2xx), else why not."""
    body = orjson.dumps(payload)
    try:
        async with http.post(url, data=body, headers=signed_headers(secret, body), allow_redirects=False) as resp:
            await resp.read()
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        return f"{type(e).__name__}: {e}"[:300]


# Dead letters -------------------------------------------------------------------


async def dead_letters(redis, agency_id: str, limit: int = 100) -> list[dict]:
    """Newest first."""
    return [orjson.loads(x) for x in await redis.lrange(keys.callback_dead(agency_id), 0, limit - 1)]


async def replay(redis, egress: Egress, agency_id: str, ids: list[str] | None = None, limit: int = 100) -> dict:
    """Send dead letters again (oldest first), once each, to the URL registered now;
    those the agency takes leave the list."""
    callback = await get_callback(redis, agency_id)
    if callback is None:
        return {"replayed": 0, "failed": 0, "errors": ["no callback URL is registered"]}
    url, secret = callback
    raw = list(reversed(await redis.lrange(keys.callback_dead(agency_id), 0, -1)))
    chosen = [(x, orjson.loads(x)) for x in raw]
    if ids is not None:
        wanted = set(ids)
        chosen = [(x, letter) for x, letter in chosen if letter["id"] in wanted]
    replayed, failed, errors = 0, 0, []
    async with egress.session(TIMEOUT_S) as http:
        for x, letter in chosen[:limit]:
            error = await post(http, url, secret, {"events": letter["events"], "replayed": True})
            if error is None:
                await redis.lrem(keys.callback_dead(agency_id), 1, x)
                replayed += 1
            else:
                failed += 1
                errors.append(f"{letter['id']}: {error}")
    return {"replayed": replayed, "failed": failed, "errors": errors[:10],
            "remaining": await redis.llen(keys.callback_dead(agency_id))}
