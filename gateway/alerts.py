"""Alerts as stored: creation with idempotency, audience, live summaries.

An alert is the hash `{a:<id>}`: doc (the checked JSON), agency, status
(`planning` -> `active` -> `done` | `cancelled` | `expired`), created_ms,
expires_ms, targeted (audience size once resolved).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import orjson

from . import keys
from .cap import area_problems
from .problems import Problem, check, invalid
from .schemas import ALERT
from .transitions import STATES, TERMINAL, now_ms, text

IDEMPOTENCY_TTL_S = 24 * 3600


def new_alert_id() -> str:
    return "al_" + secrets.token_hex(8)


def validate(doc: Any) -> dict:
    check(ALERT, doc)
    errors = area_problems(doc)
    langs = set(doc["content"])
    for i, opt in enumerate(doc.get("response_options", [])):
        if opt["code"] == "1":
            errors.append({"field": f"/response_options/{i}/code", "detail": "1 is kept for 'I got this'"})
        for lang in opt["label"]:
            if lang not in langs:
                errors.append({"field": f"/response_options/{i}/label/{lang}", "detail": "no content in that language"})
    if "expires" in doc:
        expires = datetime.fromisoformat(doc["expires"].replace("Z", "+00:00"))
        if expires.tzinfo is None:
            errors.append({"field": "/expires", "detail": "needs a UTC offset"})
        elif expires.timestamp() * 1000 <= now_ms():
            errors.append({"field": "/expires", "detail": "is in the past"})
    if errors:
        raise invalid(errors)
    return doc


def expires_ms(doc: dict) -> int:
    if "expires" not in doc:
        return 0
    return int(datetime.fromisoformat(doc["expires"].replace("Z", "+00:00")).timestamp() * 1000)


def body_digest(doc: dict) -> str:
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


# Stores the alert unless this agency already used the idempotency key:
# then returns the earlier alert id and its body digest for comparison.
_CREATE = """
if KEYS[2] ~= '' then
  local prior = redis.call('GET', KEYS[2])
  if prior then return prior end
  redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[7])
end
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'agency', ARGV[4], 'status', 'planning',
           'created_ms', ARGV[5], 'expires_ms', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return ''
"""


class Alerts:
    def __init__(self, redis):
        self.redis = redis
        self._create = redis.register_script(_CREATE)

    async def create(self, agency_id: str, doc: dict, idempotency_key: str | None) -> tuple[str, bool]:
        """(alert id, created now). A reused key with another body is a 409."""
        aid, digest = new_alert_id(), body_digest(doc)
        idem = keys.idempotency(agency_id, idempotency_key) if idempotency_key else ""
        prior = await self._create(
            keys=[keys.alert(aid), idem, keys.ALERTS, keys.agency_alerts(agency_id), keys.ACTIVE_ALERTS],
            args=[aid, digest, orjson.dumps(doc), agency_id, now_ms(), expires_ms(doc), IDEMPOTENCY_TTL_S],
        )
        if prior:
            prior_id, prior_digest = text(prior).split("|")
            if prior_digest != digest:
                raise Problem(409, "Idempotency key reused", "This Idempotency-Key was used with another body.",
                              errors=[{"field": "Idempotency-Key", "detail": "already used with a different body"}])
            return prior_id, False
        return aid, True

    async def get(self, aid: str) -> dict | None:
        raw = await self.redis.hgetall(keys.alert(aid))
        if not raw:
            return None
        out = {text(k): text(v) for k, v in raw.items() if k != b"doc"}
        out["doc"] = orjson.loads(raw[b"doc"])
        return out

    async def summary(self, aid: str) -> dict:
        """Counts by delivery state and by channel, read live from the counters."""
        meta = await self.get(aid)
        counts = {text(k): int(v) for k, v in (await self.redis.hgetall(keys.alert_counts(aid))).items()}
        by_state = {s: counts.get(s, 0) for s in STATES}
        channels: dict[str, dict[str, int]] = {}
        for field, value in counts.items():
            if field.startswith("a:"):
                _, channel, status = field.split(":", 2)
                channels.setdefault(channel, {})[status] = value
            elif field.startswith("by:"):
                channels.setdefault(field[3:], {})["confirmed_by"] = value
        targeted = int(meta.get("targeted", counts.get("targeted", 0)))
        terminal = sum(by_state[s] for s in TERMINAL)
        return {
            "id": aid,
            "status": meta["status"],
            "event": meta["doc"]["event"],
            "severity": meta["doc"]["severity"],
            "created_at": _iso(int(meta["created_ms"])),
            "targeted": targeted,
            "planned": counts.get("targeted", 0),
            "terminal": terminal,
            "deliveries": by_state,
            "fallbacks": counts.get("fallbacks", 0),
            "channels": channels,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds")


async def resolve_audience(redis, audience: dict, *, drill: bool) -> list[str]:
    """Resident ids, deduplicated, in a stable order."""
    if audience.get("everyone"):
        ids = [text(x) for x in await redis.zrange(keys.RESIDENTS, 0, -1)]
    else:
        seen: dict[str, None] = {}
        for rid in audience.get("residents", []):
            seen.setdefault(rid, None)
        for code in audience.get("districts", []):
            for rid in sorted(text(x) for x in await redis.smembers(keys.district(code))):
                seen.setdefault(rid, None)
        ids = list(seen)
    if drill:
        ids = await _drill_volunteers(redis, ids)
    return ids


async def _drill_volunteers(redis, ids: list[str]) -> list[str]:
    """Test and Exercise alerts reach only residents who agreed to drills."""
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.hget(keys.resident(rid), "p")
    out = []
    for rid, p in zip(ids, await pipe.execute()):
        if p and orjson.loads(p).get("dr"):
            out.append(rid)
    return out


async def unknown_residents(redis, ids: list[str]) -> list[int]:
    pipe = redis.pipeline(transaction=False)
    for rid in ids:
        pipe.exists(keys.resident(rid))
    return [i for i, found in enumerate(await pipe.execute()) if not found]
