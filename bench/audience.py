"""How fast an audience is resolved for 100,000 residents, and that it is right.

    .venv/bin/python -m bench.audience [--residents 100000] [--seed 3]

Starts an embedded Redis, writes synthetic residents through the registry,
then times:
- building the in-process index (`ResidentIndex`, what an API process does once);
- an audience preview for a polygon and a circle (the numpy + shapely pass
  and one plan per kind of resident: what `POST /v1/audience/preview` does);
- the fan-out's resolution through Redis (GEOSEARCH, then the exact test);
and checks both against a brute-force point-in-polygon count.

The synthetic residents and the brute-force tests are also used by the tests
(tests/test_geo.py, tests/e2e/test_polygon_audience.py).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from simulator.city import SEOUL

# The Korean heat-wave sample's polygon (tests/cap_samples/ko_heatwave.xml):
# over Jongno-gu (11110) and Jung-gu (11140), [lat, lon].
HEAT_POLYGON = [[37.5950, 126.9600], [37.5950, 127.0150], [37.5550, 127.0250], [37.5500, 126.9650],
                [37.5950, 126.9600]]
# An L-shaped polygon across Mapo-gu and Yongsan-gu: concave, so a bounding box alone is wrong.
L_POLYGON = [[37.575, 126.90], [37.575, 126.93], [37.545, 126.93], [37.545, 127.00], [37.525, 127.00],
             [37.525, 126.90], [37.575, 126.90]]
FLOOD_CIRCLE = {"lat": 37.5, "lon": 127.05, "radius_km": 3.5}


def synthetic_residents(n: int, seed: int = 3, prefix: str = "s") -> list[dict]:
    """Residents spread over the virtual city's districts, with the city's mix of
    phones, push, paper and needs, roughly; 3% have no home point on file."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        district = SEOUL[i % len(SEOUL)]
        rid = f"{prefix}{i:06d}"
        doc = {"id": rid, "languages": ["ko"], "district": district.code,
               "consent": {"non_emergency": rng.random() < 0.9, "drills": rng.random() < 0.6}}
        if rng.random() >= 0.03:
            doc["location"] = {"lat": round(rng.uniform(*district.lat), 6), "lon": round(rng.uniform(*district.lon), 6)}
        roll = rng.random()
        number = f"+8210{i:08d}"
        if roll < 0.80:
            contacts = [{"type": "fcm", "token": f"tok-{rid}-" + "x" * 20},
                        {"type": "phone", "number": number, "handset": "smartphone"}]
        elif roll < 0.90:
            contacts = [{"type": "phone", "number": number, "handset": "smartphone"}]
        elif roll < 0.95:
            contacts = [{"type": "phone", "number": number, "handset": "feature_phone"}]
        elif roll < 0.98:
            contacts = [{"type": "phone", "number": f"+822{i:08d}", "handset": "landline"}]
        else:
            contacts = []
        if rng.random() < 0.9:
            contacts.append({"type": "postal", "lines": [f"{i} Road"], "postcode": "03000"})
        doc["contacts"] = contacts
        needs = [need for need, p in (("blind", 0.004), ("deaf", 0.003), ("elderly", 0.15)) if rng.random() < p]
        if needs:
            doc["needs"] = needs
        if rng.random() < 0.08:
            doc["quiet_hours"] = {"start": "22:00", "end": "07:00", "tz": "Asia/Seoul"}
        out.append(doc)
    return out


def in_polygon(lat: float, lon: float, polygon: list[list[float]]) -> bool:
    """Brute force, by ray casting, in plain Python (independent of shapely)."""
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(polygon, polygon[1:]):
        if (lat1 > lat) != (lat2 > lat):
            cross = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < cross:
                inside = not inside
    return inside


def in_circle(lat: float, lon: float, circle: dict) -> bool:
    p1, p2 = math.radians(circle["lat"]), math.radians(lat)
    dp, dl = p2 - p1, math.radians(lon - circle["lon"])
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a)) <= circle["radius_km"]


def brute_force(residents: list[dict], polygon=None, circle=None) -> set[str]:
    out = set()
    for r in residents:
        loc = r.get("location")
        if loc and ((polygon and in_polygon(loc["lat"], loc["lon"], polygon))
                    or (circle and in_circle(loc["lat"], loc["lon"], circle))):
            out.add(r["id"])
    return out


async def store(redis, residents: list[dict], vault) -> None:
    from gateway.registry import Registry

    registry = Registry(redis, vault)
    for i in range(0, len(residents), 2000):
        await registry.put_many(residents[i:i + 2000])



def bench_specs():
    from gateway.fallback import ChannelSpec

    return {
        "push": ChannelSpec("push", frozenset({"fcm", "webpush"})),
        "sms": ChannelSpec("sms", frozenset({"phone"}), frozenset({"smartphone", "feature_phone"})),
        "voice": ChannelSpec("voice", frozenset({"phone"}), frozenset({"smartphone", "feature_phone", "landline"})),
        "mail": ChannelSpec("mail", frozenset({"postal"})),
    }


async def run(count: int, seed: int) -> None:
    import os

    from gateway.api.audience import reach
    from gateway.crypto import Vault
    from gateway.embedded_redis import EmbeddedRedis
    from gateway.fallback import Policy
    from gateway.geo import ResidentIndex, residents_in_areas
    from gateway.store import connect

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp)).start()
        redis = connect(server.url)
        try:
            residents = synthetic_residents(count, seed)
            t = time.perf_counter()
            await store(redis, residents, Vault(os.urandom(32), os.urandom(32)))
            print(f"stored {count:,} residents in {time.perf_counter() - t:.1f} s")

            index = ResidentIndex(redis)
            t = time.perf_counter()
            snap = await index.snapshot()
            print(f"index built in {time.perf_counter() - t:.2f} s ({len(snap):,} residents, "
                  f"{len(snap.kinds)} kinds of resident)")
            t = time.perf_counter()
            await index.snapshot()
            print(f"index refreshed (nothing changed) in {(time.perf_counter() - t) * 1000:.1f} ms")

            for name, areas, expected in (
                ("heat-wave polygon", [{"polygon": HEAT_POLYGON}], brute_force(residents, polygon=HEAT_POLYGON)),
                ("L-shaped polygon", [{"polygon": L_POLYGON}], brute_force(residents, polygon=L_POLYGON)),
                ("flood circle", [{"circle": FLOOD_CIRCLE}], brute_force(residents, circle=FLOOD_CIRCLE)),
            ):
                t = time.perf_counter()
                snap = await index.snapshot()
                mask = snap.audience_mask({"areas": areas})
                out = reach(snap, mask, Policy.from_alert({"severity": "Severe"}), bench_specs(),
                            datetime.now(timezone.utc))
                took = time.perf_counter() - t
                t = time.perf_counter()
                fanned = await residents_in_areas(redis, areas)
                fan_took = time.perf_counter() - t
                ok = out["targeted"] == len(expected) and set(fanned) == expected
                print(f"{name}: brute force {len(expected):,}; preview {out['targeted']:,} in {took * 1000:.0f} ms; "
                      f"fan-out (GEOSEARCH + exact) {len(fanned):,} in {fan_took * 1000:.0f} ms  "
                      f"{'OK' if ok else 'MISMATCH'}")
                print(f"    {out['summary']}")
        finally:
            await redis.aclose()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.residents, args.seed))


if __name__ == "__main__":
    main()
