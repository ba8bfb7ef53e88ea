"""What comes before a fan-out's first send, side by side at 10,000, 100,000
and 1,000,000 residents, per resident: flat columns mean nothing grows faster
than the city.

    .venv/bin/python bench/scale.py                          # 10k, 100k, 1M: ~15 min here
    .venv/bin/python bench/scale.py --sizes 10000 100000

Each size on a fresh embedded Redis, in this order:
- the virtual city (`simulator.city.generate`, what demos and drills use);
- the file import (`gateway residents import`: parse, check, `import_many`),
  of that city, then again (a re-run writes nothing);
- the fan-out bench's city (bench/fanout.py: feature phones) generated and
  imported as the fan-out bench does it, a chunk at a time;
- audience selection: everyone (`resolve_audience`, as the fan-out), a polygon
  through Redis (GEOSEARCH, then the exact test) and the in-process index's build;
then Redis memory per resident and the peak RSS of this process and of Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gateway.alerts import resolve_audience  # noqa: E402
from gateway.crypto import Vault  # noqa: E402
from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.registry import Registry, check_import  # noqa: E402
from gateway.store import connect  # noqa: E402

CHUNK = 2000
# Over Jongno-gu and Jung-gu: the Korean heat-wave sample's polygon (bench/audience.py).
HEAT_AREAS = [{"polygon": [[37.5950, 126.9600], [37.5950, 127.0150], [37.5500, 127.0250], [37.5500, 126.9650],
                           [37.5950, 126.9600]]}]


def fanout_residents(start: int, stop: int) -> Iterator[dict]:
    """The fan-out bench's residents: feature phones only, so SMS first, then a call."""
    for i in range(start, stop):
        yield {"id": f"b{i:06d}", "languages": ["ko"], "district": f"D{i % 25:02d}",
               "contacts": [{"type": "phone", "number": f"+82105{i:07d}", "handset": "feature_phone"}]}


# A handset switched off: the network holds the SMS (Twilio says `sent`) and
# its receipt comes long after the step's timeout, so the step times out even
# when the gateway asks Twilio what became of it.
SWITCHED_OFF_S = 10**6


def fanout_behaviour(n: int, out: Path) -> Path:
    """What the simulator makes each of them do: handsets switched off, nobody answers the call."""
    path = out / "behaviour.ndjson"
    with path.open("wb") as f:
        for i in range(n):
            f.write(orjson.dumps({"resident": f"b{i:06d}", "phones": [f"+82105{i:07d}"],
                                  "sms": {"delay_s": SWITCHED_OFF_S}, "voice": {"answer": "no-answer"}}) + b"\n")
    return path


async def load_fanout_city(redis, vault: Vault, n: int) -> tuple[float, float]:
    """The fan-out's city into the registry a chunk at a time, as an import file
    would be: (seconds making residents, seconds checking and writing them)."""
    registry = Registry(redis, vault)
    made = imported = 0.0
    for start in range(0, n, CHUNK):
        t = time.perf_counter()
        chunk = list(enumerate(fanout_residents(start, min(n, start + CHUNK)), start=start + 1))
        t1 = time.perf_counter()
        await registry.put_many(check_import(chunk))
        made, imported = made + t1 - t, imported + time.perf_counter() - t1
    return made, imported


async def redis_cpu(redis) -> float:
    info = await redis.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


async def one_size(n: int, seed: int) -> dict[str, float]:
    from gateway.config import Settings
    from gateway.geo import ResidentIndex, residents_in_areas
    from gateway.resident_import import import_file
    from simulator.city import generate

    data = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(data)})
    server = EmbeddedRedis(data).start()
    redis = connect(server.url)
    out: dict[str, float] = {}

    async def timed(name: str, work):
        cpu, rcpu, t = time.process_time(), await redis_cpu(redis), time.perf_counter()
        result = work()
        if inspect.isawaitable(result):
            result = await result
        out[name] = time.perf_counter() - t
        out[f"{name} cpu"] = time.process_time() - cpu + await redis_cpu(redis) - rcpu
        print(f"  {n:,}: {name} {out[name]:.1f} s ({out[f'{name} cpu']:.1f} s CPU)", flush=True)
        return result

    try:
        files = await timed("virtual city generated", lambda: generate(n, seed, data / "city"))
        mem0 = (await redis.info("memory"))["used_memory"]
        for run in ("imported", "imported again"):
            counts, _ = await timed(f"virtual city {run}",
                                    lambda: import_file(settings, files.residents, "ndjson", redis))
            assert counts["created"] + counts["updated"] + counts["unchanged"] == n, counts
        assert counts["unchanged"] == n, counts
        out["redis bytes per resident"] = ((await redis.info("memory"))["used_memory"] - mem0) / n
        out["polygon reached"] = len(await timed("polygon audience (Redis)",
                                                 lambda: residents_in_areas(redis, HEAT_AREAS)))
        index = ResidentIndex(redis)
        await timed("in-process index built", index.snapshot)
        shutil.rmtree(data / "city")
        await redis.flushdb(asynchronous=True)  # a synchronous flush of millions of keys outlasts the socket timeout

        vault = Vault.of(settings)
        made, imported = await load_fanout_city(redis, vault, n)
        out["fan-out city made"], out["fan-out city imported"] = made, imported
        print(f"  {n:,}: fan-out city made {made:.1f} s, imported {imported:.1f} s", flush=True)
        everyone = await timed("everyone selected", lambda: resolve_audience(redis, {"everyone": True}, drill=False))
        assert len(everyone) == n, len(everyone)
        out["peak RSS redis MB"] = psutil.Process(server.proc.pid).memory_info().rss / 2**20
        for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["peak RSS redis MB"] = int(line.split()[1]) / 1024
    finally:
        await redis.aclose()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    out["peak RSS bench MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = {}
    for n in args.sizes:
        print(f"{n:,} residents (load {os.getloadavg()[0]:.2f})", flush=True)
        results[n] = asyncio.run(one_size(n, args.seed))

    print(f"\nper resident; wall us [CPU us, this process + Redis]; load average {load:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end, {os.cpu_count()} cores")
    names = [k for k in results[args.sizes[0]] if f"{k} cpu" in results[args.sizes[0]]]
    width = max(map(len, names + ["fan-out city imported"]))
    print(f"{'':<{width}}  " + "".join(f"{n:>22,}" for n in args.sizes))
    for name in names[:5] + ["fan-out city made", "fan-out city imported"] + names[5:]:
        cells = []
        for n in args.sizes:
            r = results[n]
            cpu = f" [{r[f'{name} cpu'] / n * 1e6:,.0f}]" if f"{name} cpu" in r else ""
            cells.append(f"{r[name] / n * 1e6:,.1f}{cpu}")
        print(f"{name:<{width}}  " + "".join(f"{c:>22}" for c in cells))
    for name in ("redis bytes per resident", "peak RSS redis MB", "peak RSS bench MB", "polygon reached"):
        print(f"{name:<{width}}  " + "".join(f"{results[n][name]:>22,.0f}" for n in args.sizes))
    print(f"{'(seconds in all)':<{width}}  " + "".join(
        f"{sum(v for k, v in results[n].items() if k in names or k.startswith('fan-out')):>22,.0f}"
        for n in args.sizes))


if __name__ == "__main__":
    main()
