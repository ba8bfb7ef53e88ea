"""Agencies and their API keys.

A key is `gw_<key id>_<secret>`, shown once.  Redis keeps only SHA-256 of the
secret: the secret is 32 random bytes, so a slow password hash (argon2, as
for operators' passwords) would add ~50 ms to every request and no safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from . import keys
from .transitions import now_ms, text

SCOPES = ("alerts:write", "alerts:read", "residents:write")
DEFAULT_RATE_PER_S = 50


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    scopes: frozenset[str]
    # District codes it may target; empty means the whole city.
    districts: frozenset[str]
    rate_per_s: int = DEFAULT_RATE_PER_S


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_agency(redis, name: str, scopes=SCOPES, districts=(), rate_per_s: int = DEFAULT_RATE_PER_S
                        ) -> tuple[Agency, str]:
    """A new agency and its API key (the only time the key is seen)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    agency = Agency("ag_" + secrets.token_hex(6), name, frozenset(scopes), frozenset(districts), rate_per_s)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.agency(agency.id), mapping={
        "name": name, "scopes": ",".join(sorted(agency.scopes)), "districts": ",".join(sorted(agency.districts)),
        "rate": rate_per_s, "created_ms": now_ms()})
    pipe.hset(keys.api_key(key_id), mapping={"agency": agency.id, "sha256": _digest(secret)})
    pipe.sadd(keys.AGENCIES, agency.id)
    await pipe.execute()
    return agency, f"gw_{key_id}_{secret}"


async def authenticate(redis, api_key: str) -> Agency | None:
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "gw":
        return None
    stored = await redis.hmget(keys.api_key(parts[1]), "agency", "sha256")
    if stored[0] is None or not hmac.compare_digest(text(stored[1]), _digest(parts[2])):
        return None
    return await get_agency(redis, text(stored[0]))


async def get_agency(redis, agency_id: str) -> Agency | None:
    raw = await redis.hgetall(keys.agency(agency_id))
    if not raw:
        return None
    f = {text(k): text(v) for k, v in raw.items()}
    return Agency(agency_id, f["name"], frozenset(filter(None, f["scopes"].split(","))),
                  frozenset(filter(None, f["districts"].split(","))), int(f.get("rate", DEFAULT_RATE_PER_S)))


async def within_rate(redis, agency: Agency) -> bool:
    """A one-second window per agency."""
    key = keys.rate_window(agency.id, now_ms() // 1000)
    pipe = redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 2)
    count, _ = await pipe.execute()
    return count <= agency.rate_per_s
