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
from urllib.parse import urlsplit

import orjson

from . import keys
from .egress import Egress
from .geo import agency_area, ring_problem
from .transitions import now_ms, text

SCOPES = ("alerts:write", "alerts:read", "residents:write")
DEFAULT_RATE_PER_S = 50


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    scopes: frozenset[str]
    # District codes it may target; with `areas` empty too, the whole city.
    districts: frozenset[str]
    rate_per_s: int = DEFAULT_RATE_PER_S
    # Polygons it may target, each a closed ring of [lat, lon] points.
    areas: tuple = ()
    # It registered a URL for agency callbacks (gateway/callbacks.py).
    has_callback: bool = False

    def area(self):
        return agency_area(self.districts, orjson.dumps(self.areas).decode())

    def holds(self, district: str, location: dict | None) -> bool:
        """A resident whose home is here is the agency's to read, replace and erase."""
        return self.area().holds_home(district, location)

    def outside_problems(self, resident: dict) -> list[dict]:
        """Why a resident given to this agency lives outside its area: each field, or none."""
        if self.holds(resident["district"], resident.get("location")):
            return []
        errors = []
        if self.districts:
            errors.append({"field": "/district",
                           "detail": f"outside your agency's districts ({', '.join(sorted(self.districts))})"})
        if self.areas:
            errors.append({"field": "/location",
                           "detail": "outside your agency's polygons" if "location" in resident
                           else "missing: your agency's area is drawn as polygons; give the home's point"})
        return errors


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_agency(redis, name: str, scopes=SCOPES, districts=(), rate_per_s: int = DEFAULT_RATE_PER_S,
                        areas=()) -> tuple[Agency, str]:
    """A new agency and its API key (the only time the key is seen)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    areas = tuple(tuple(tuple(float(c) for c in point) for point in ring) for ring in areas)
    for n, ring in enumerate(areas):
        problem = ring_problem(ring)
        if problem:
            raise ValueError(f"area {n + 1}: {problem}")
    agency = Agency("ag_" + secrets.token_hex(6), name, frozenset(scopes), frozenset(districts), rate_per_s, areas)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.agency(agency.id), mapping={
        "name": name, "scopes": ",".join(sorted(agency.scopes)), "districts": ",".join(sorted(agency.districts)),
        "rate": rate_per_s, "created_ms": now_ms(), "areas": orjson.dumps(areas)})
    pipe.hset(keys.api_key(key_id), mapping={"agency": agency.id, "sha256": _digest(secret)})
    pipe.sadd(keys.AGENCIES, agency.id)
    await pipe.execute()
    return agency, f"gw_{key_id}_{secret}"


# A key id names one agency for good: once a key has been checked, its next
# request reads the key, the agency and the rate window in one round trip (an
# alert's accept waits on Redis once per round trip, behind the workers' Lua
# calls).  The key itself is read every time, so a deleted key fails at once.
_agency_of_key: dict[str, str] = {}


async def authenticate(redis, api_key: str) -> tuple[Agency, int] | None:
    """The key's agency, and how many requests the agency has made in this
    second, this one included; None for an unknown key."""
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "gw":
        return None
    key_id, secret = parts[1], parts[2]
    agency_id = _agency_of_key.get(key_id)
    if agency_id is None:
        agency_id = _key_agency(await redis.hmget(keys.api_key(key_id), "agency", "sha256"), secret)
        if agency_id is None:
            return None
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.api_key(key_id), "agency", "sha256")
    pipe.hgetall(keys.agency(agency_id))
    _count_request(pipe, agency_id)
    stored, raw, count, _ = await pipe.execute()
    if _key_agency(stored, secret) != agency_id:
        _agency_of_key.pop(key_id, None)
        return None
    _agency_of_key[key_id] = agency_id
    return (_agency(agency_id, raw), count) if raw else None


def _key_agency(stored: list, secret: str) -> str | None:
    """The agency of a stored key (agency, sha256) whose secret this is, or None."""
    if stored[0] is None or not hmac.compare_digest(text(stored[1]), _digest(secret)):
        return None
    return text(stored[0])


async def get_agency(redis, agency_id: str) -> Agency | None:
    return _agency(agency_id, await redis.hgetall(keys.agency(agency_id)))


def _agency(agency_id: str, raw: dict) -> Agency | None:
    if not raw:
        return None
    f = {text(k): text(v) for k, v in raw.items()}
    areas = tuple(tuple(tuple(point) for point in ring) for ring in orjson.loads(f.get("areas") or "[]"))
    return Agency(agency_id, f["name"], frozenset(filter(None, f["scopes"].split(","))),
                  frozenset(filter(None, f["districts"].split(","))), int(f.get("rate", DEFAULT_RATE_PER_S)), areas,
                  has_callback=bool(f.get("cb_url")))


# Callbacks: where the gateway reports an agency's alerts (gateway/callbacks.py).

CALLBACK_SECRET_MIN = 16


def callback_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > 2048:
        return "an absolute http(s) URL of at most 2048 characters"
    return None


async def callback_problem(url: str, egress: Egress) -> str | None:
    """Why the gateway may not POST an agency's events to this URL, or None."""
    return callback_url_problem(url) or await egress.url_problem(url)


async def set_callback(redis, agency_id: str, url: str, secret: str | None = None) -> str:
    """Register (or replace) the agency's callback URL; returns the signing secret."""
    problem = callback_url_problem(url)
    if problem:
        raise ValueError(problem)
    if secret is not None and len(secret) < CALLBACK_SECRET_MIN:
        raise ValueError(f"a secret needs at least {CALLBACK_SECRET_MIN} characters")
    secret = secret or "whsec_" + secrets.token_urlsafe(32)
    await redis.hset(keys.agency(agency_id), mapping={"cb_url": url, "cb_secret": secret})
    return secret


async def get_callback(redis, agency_id: str) -> tuple[str, str] | None:
    """(url, secret), or None when the agency registered none."""
    url, secret = await redis.hmget(keys.agency(agency_id), "cb_url", "cb_secret")
    return (text(url), text(secret)) if url else None


async def remove_callback(redis, agency_id: str) -> None:
    await redis.hdel(keys.agency(agency_id), "cb_url", "cb_secret")


def _count_request(pipe, agency_id: str) -> None:
    """Queues the count of a request in the agency's one-second window."""
    key = keys.rate_window(agency_id, now_ms() // 1000)
    pipe.incr(key)
    pipe.expire(key, 2)
