"""The reach report: per district, who only one channel can reach and who none,
which contact points went stale (found dead by a failure, or unconfirmed for
GATEWAY_CONTACT_STALE_DAYS), and how long confirmation takes by channel and
by age.

Reach is the plan each resident would get today (gateway.fallback.build_plan,
default policy, the channels this gateway has), so it counts needs and dead
contact points as the engine does.  Times come from past alerts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone

import orjson
from aiohttp import web

from .. import deliveries, keys
from ..api.http import STATE, json_response, require
from ..api.routing import Route, returns
from ..fallback import Policy, build_plan
from ..registry import every_resident_id, profile
from ..schemas import COUNTS, INTEGER, STRING, STRINGS, record
from ..transitions import text
from .outcomes import median

KINDS = ("several", "push", "sms", "voice", "mail", "none")
AGE_BANDS = ((0, 39, "under 40"), (40, 64, "40-64"), (65, 74, "65-74"), (75, 200, "75 and over"))
CHUNK = 2000
PAST_ALERTS = 20
CONFIRMED_SAMPLE = 5000
CACHE_S = 60


def age_band(birth_year: int | None, year: int) -> str:
    if not birth_year:
        return "unknown"
    age = year - birth_year
    return next((name for low, high, name in AGE_BANDS if low <= age <= high), "unknown")


def reach_kind(plan: list) -> str:
    channels = {leg[0] for step in plan for leg in step["l"]}
    if not channels:
        return "none"
    return "several" if len(channels) > 1 else channels.pop()


async def report(redis, specs: dict, districts: frozenset[str] = frozenset(), scope: str = "all",
                 stale_days: float = 365.0) -> dict:
    """The report for the whole city (`scope` all), or for one agency: its `districts` and its alerts.

    Cached a minute per scope: it reads every resident.
    """
    cached = await redis.get(keys.reach(scope))
    if cached:
        return orjson.loads(cached)
    body = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "channels": sorted(specs),
        "stale_after_days": stale_days,
        "districts": await _districts(redis, specs, districts, stale_days),
        "time_to_confirmation": await _times(redis, scope),
    }
    await redis.set(keys.reach(scope), orjson.dumps(body), ex=CACHE_S)
    return body


async def _districts(redis, specs: dict, only: frozenset[str], stale_days: float) -> list[dict]:
    policy = Policy()
    reach: dict[str, Counter] = defaultdict(Counter)
    stale: dict[str, Counter] = defaultdict(Counter)
    unconfirmed: dict[str, Counter] = defaultdict(Counter)
    rids = await every_resident_id(redis)
    for i in range(0, len(rids), CHUNK):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[i:i + CHUNK]:
            pipe.hmget(keys.resident(rid), "p", "x", "lc")
        for p, x, lc in await pipe.execute():
            if p is None:
                continue
            fields = orjson.loads(p)
            district = fields["d"]
            if only and district not in only:
                continue
            prof = profile({b"p": p, b"x": x, b"lc": lc}, stale_days)
            live = set(range(len(prof.contacts))) - prof.dead
            old = live & prof.stale
            for index in old:
                unconfirmed[district][prof.contacts[index].type] += 1
            # Nothing fresher to fall back on: their data may be wrong and nobody would know.
            if live and old == live:
                unconfirmed[district]["residents_only_stale"] += 1
            reach[district][reach_kind(build_plan(prof, policy, specs))] += 1
            if prof.dead:
                stale[district]["residents"] += 1
                for index in prof.dead:
                    if index < len(prof.contacts):
                        stale[district][prof.contacts[index].type] += 1
    out = []
    for district in sorted(reach):
        counts = {kind: reach[district][kind] for kind in KINDS}
        total = sum(counts.values())
        points = {k: v for k, v in sorted(stale[district].items()) if k != "residents"}
        old = {k: v for k, v in sorted(unconfirmed[district].items()) if k != "residents_only_stale"}
        out.append({"district": district, "residents": total, "counts": counts,
                    "shares": {kind: round(n / total, 4) for kind, n in counts.items()},
                    "stale": {"residents": stale[district]["residents"], "contact_points": points},
                    "unconfirmed": {"residents_only_stale": unconfirmed[district]["residents_only_stale"],
                                    "contact_points": old}})
    return out


async def _times(redis, scope: str) -> dict:
    """Median seconds from alert to confirmation, by confirming channel, by age band, and both."""
    source = keys.ALERTS if scope == "all" else keys.agency_alerts(scope)
    aids = [text(a) for a in await redis.zrevrange(source, 0, PAST_ALERTS - 1)]
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for aid in aids:
        created = int(await redis.hget(keys.alert(aid), "created_ms") or 0)
        year = datetime.fromtimestamp(created / 1000).year
        rids = (await deliveries.residents_in(redis, aid, "confirmed"))[:CONFIRMED_SAMPLE]
        pipe = redis.pipeline(transaction=False)
        for rid in rids:
            pipe.hmget(keys.delivery(aid, rid), "y", "e")
            pipe.hget(keys.resident(rid), "p")
        res = await pipe.execute()
        for (y, e), p in zip(res[::2], res[1::2]):
            if not y or not e:
                continue
            band = age_band(orjson.loads(p).get("by") if p else None, year)
            samples[(text(y).split(":")[0], band)].append((int(e) - created) / 1000)

    def summarise(groups: dict[str, list[float]]) -> dict:
        return {g: {"confirmed": len(v), "median_s": median(v)} for g, v in sorted(groups.items())}

    by_channel, by_band = defaultdict(list), defaultdict(list)
    both: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for (channel, band), values in samples.items():
        by_channel[channel] += values
        by_band[band] += values
        both[channel][band] = values
    return {"alerts": len(aids), "by_channel": summarise(by_channel), "by_age_band": summarise(by_band),
            "by_channel_and_age_band": {ch: summarise(groups) for ch, groups in sorted(both.items())},
            "age_bands": [name for _, _, name in AGE_BANDS] + ["unknown"]}


async def get_reach(request: web.Request) -> web.Response:
    agency = await require(request, "alerts:read")
    state = request.app[STATE]
    # An agency sees its own districts and the times of its own alerts.
    return json_response(await report(state["redis"], state["engine"].specs(), agency.districts, agency.id,
                                      state["settings"].contact_stale_days))


_MEDIANS = {"type": "object", "additionalProperties": record({"confirmed": INTEGER, "median_s": {"type": "number"}})}
REPORT = record({
    "generated_at": {"type": "string", "format": "date-time"}, "channels": STRINGS,
    "stale_after_days": {"type": "number"},
    "districts": {"type": "array", "items": record({
        "district": STRING, "residents": INTEGER, "counts": COUNTS,
        "shares": {"type": "object", "additionalProperties": {"type": "number"}},
        "stale": record({"residents": INTEGER, "contact_points": COUNTS}),
        "unconfirmed": record({"residents_only_stale": INTEGER, "contact_points": COUNTS})})},
    "time_to_confirmation": record({"alerts": INTEGER, "by_channel": _MEDIANS, "by_age_band": _MEDIANS,
                                    "by_channel_and_age_band": {"type": "object", "additionalProperties": _MEDIANS},
                                    "age_bands": STRINGS}),
})

ROUTES = [
    Route("GET", "/v1/reports/reach", get_reach,
          "Per district: who only SMS, voice or mail can reach and who none; contact points found dead or "
          "unconfirmed for GATEWAY_CONTACT_STALE_DAYS, and who has nothing fresher; "
          "median time to confirmation by channel and age band", "alerts:read", tag="reports",
          responses={200: returns("The report (cached for a short while)", REPORT)}),
]
