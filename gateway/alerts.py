"""Alerts as stored: creation with idempotency, audience, live summaries.

An alert is the hash `{a:<id>}`: doc (the checked JSON), agency, status
(`planning` -> `active` -> `done` | `cancelled` | `expired`), created_ms,
expires_ms, targeted (audience size once resolved), version (1, then one
more for each update; gateway/lifecycle.py), cap (the CAP message it came
from, JSON), cb (present when the agency hears of its deliveries,
gateway/callbacks.py), and for an update round, parent.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import numpy as np
import orjson

from . import keys
from .geo import AgencyArea, residents_in_areas
from .problems import Problem
from .registry import every_resident_id
from .transitions import STATES, TERMINAL, Transitions, text

IDEMPOTENCY_TTL_S = 24 * 3600


def new_alert_id() -> str:
    return "al_" + secrets.token_hex(8)


def expires_ms(doc: dict) -> int:
    if "expires" not in doc:
        return 0
    return int(datetime.fromisoformat(doc["expires"].replace("Z", "+00:00")).timestamp() * 1000)


def drill_of(doc: dict) -> str:
    """The CAP status of a drill (Test, Exercise), or "" for an Actual alert."""
    status = doc.get("status", "Actual")
    return "" if status == "Actual" else status


def body_digest(doc: dict) -> str:
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Alerts:
    def __init__(self, redis):
        self.redis = redis

    async def create(self, agency_id: str, doc: dict, idempotency_key: str | None, *, cap: dict | None = None,
                     cap_digest: str = "", callbacks: bool = False) -> tuple[str, bool]:
        """(alert id, created now). A reused key, or a CAP identifier posted
        before by the same sender, with another body is a 409.

        `cap`: the CAP message the alert came from ({identifier, sender, sent,
        msg_type, ...}); `cap_digest` stands for its body."""
        aid = new_alert_id()
        digest = cap_digest or body_digest(doc)
        idem = keys.idempotency(agency_id, idempotency_key) if idempotency_key else ""
        prior = await Transitions(self.redis).create_alert(
            aid, agency_id, orjson.dumps(doc), digest, expires_ms=expires_ms(doc), idempotency_key=idem,
            idempotency_ttl_s=IDEMPOTENCY_TTL_S, callbacks=callbacks, drill=drill_of(doc), **cap_message(cap))
        if prior:
            prior_id, prior_digest = prior.split("|")[:2]
            if prior_digest != digest:
                if cap and not (idem and await self.redis.get(idem)):
                    raise Problem(409, "CAP message reused", "This sender already posted a message with this "
                                  "identifier and a different content.",
                                  errors=[{"field": "alert/identifier", "detail": "already used by this sender "
                                                                                 "with a different message"}])
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

    async def rounds(self, aid: str) -> list[str]:
        return [text(r) for r in await self.redis.lrange(keys.alert_rounds(aid), 0, -1)]

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
        out = {
            "id": aid,
            "status": meta["status"],
            "event": meta["doc"]["event"],
            "severity": meta["doc"]["severity"],
            "created_at": _iso(int(meta["created_ms"])),
            "version": int(meta.get("version", 1)),
            "targeted": targeted,
            "planned": counts.get("targeted", 0),
            "terminal": terminal,
            "deliveries": by_state,
            "fallbacks": counts.get("fallbacks", 0),
            "channels": channels,
        }
        if drill_of(meta["doc"]):
            out["drill"] = drill_of(meta["doc"])
        if "parent" in meta:
            out["update_of"] = meta["parent"]
        rounds = await self.rounds(aid)
        if rounds:
            # An update reaches those already confirmed again, each in a round of its own.
            out["update_rounds"] = [await self.summary(r) for r in rounds]
        return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds")


def cap_field(sender: str, identifier: str) -> str:
    return f"{sender},{identifier}"


def cap_message(cap: dict | None) -> dict:
    """A CAP message as the transitions that remember it take it: its index
    field (sender, identifier) and its JSON; empty for a JSON alert."""
    if not cap:
        return {"cap_field": "", "cap": ""}
    return {"cap_field": cap_field(cap["sender"], cap["identifier"]), "cap": orjson.dumps(cap)}


async def resolve_audience(redis, audience: dict, *, drill: bool, within: AgencyArea | None = None) -> list[str]:
    """Resident ids, deduplicated, in a stable order.

    `within`: the posting agency's area; anyone outside it is left out (the
    API refused what it could see was outside; this catches residents who
    moved in between)."""
    if audience.get("everyone"):
        ids = await every_resident_id(redis)
    else:
        seen: dict[str, None] = {}
        for rid in audience.get("residents", []):
            seen.setdefault(rid, None)
        for code in audience.get("districts", []):
            for rid in sorted(text(x) for x in await redis.smembers(keys.district(code))):
                seen.setdefault(rid, None)
        if audience.get("areas"):
            for rid in await residents_in_areas(redis, audience["areas"]):
                seen.setdefault(rid, None)
        ids = list(seen)
    if drill or (within is not None and within.limited):
        ids = await _keep(redis, ids, drill, within)
    return ids


async def _keep(redis, ids: list[str], drill: bool, within: AgencyArea | None) -> list[str]:
    """Test and Exercise alerts reach only residents who agreed to drills;
    nobody outside the agency's area is reached."""
    out = []
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        pipe = redis.pipeline(transaction=False)
        for rid in chunk:
            pipe.hget(keys.resident(rid), "p")
        profiles = [orjson.loads(p) if p else None for p in await pipe.execute()]
        keep = np.array([p is not None and (not drill or bool(p.get("dr"))) for p in profiles], dtype=bool)
        if within is not None and within.limited:
            codes = sorted({p["d"] for p in profiles if p})
            index = {code: i for i, code in enumerate(codes)}
            district = np.array([index[p["d"]] if p else -1 for p in profiles], dtype=np.int32)
            lat = np.array([p["loc"][0] if p and p.get("loc") else np.nan for p in profiles])
            lon = np.array([p["loc"][1] if p and p.get("loc") else np.nan for p in profiles])
            keep &= within.holds(district, codes, lat, lon)
        out.extend(rid for rid, ok in zip(chunk, keep) if ok)
    return out
