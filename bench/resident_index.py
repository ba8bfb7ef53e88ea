"""How long the API's in-process resident index holds the event loop, this
checkout's against another's, on one Redis holding the same city.

    .venv/bin/python bench/resident_index.py --baseline /tmp/old --residents 1000000

The API keeps every resident's point, district and plan kind in process
(gateway/geo.py `ResidentIndex`) for previews and agencies' area checks; it
rebuilds it after a bulk import and takes a new snapshot after any resident
changed (a dead number found by a send is enough).  Both run on the event
loop that answers agencies and providers, so what matters is the longest
time the loop could not turn: a task of this bench wakes every millisecond
and records its longest gap.  Each checkout runs in a process of its own,
alternating which goes first: the rebuild (every resident read), then
rounds of one resident changed and a snapshot taken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from scale import load_fanout_city  # noqa: E402

from gateway.config import Settings  # noqa: E402
from gateway.crypto import Vault  # noqa: E402
from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.store import connect  # noqa: E402

# What one checkout runs, in a process of its own from that checkout.
ROUND = r"""
import asyncio, gc, os, sys, time
import orjson, uvloop
from gateway.geo import ResidentIndex
from gateway.registry import Registry
from gateway.crypto import Vault
from gateway.config import Settings
from gateway.store import connect

class Stalls:
    # The loop's longest gap while `during` runs: what an agency's request could have waited.
    async def during(self, coro):
        worst, done = 0.0, False
        async def tick():
            nonlocal worst
            while not done:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                worst = max(worst, time.perf_counter() - t - 0.001)
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.01)
        t = time.perf_counter()
        await coro
        took = time.perf_counter() - t
        done = True
        await ticker
        return took, worst

async def main(rounds):
    gc.freeze()  # as the API does once started (gateway/service.py)
    redis = connect(os.environ["GATEWAY_REDIS_URL"])
    registry = Registry(redis, Vault.of(Settings.from_env()))
    index, stalls = ResidentIndex(redis), Stalls()
    rebuild = await stalls.during(index.snapshot())
    changes = []
    for r in range(rounds):
        await registry.mark_dead("b000001", r % 2)
        changes.append(await stalls.during(index.snapshot()))
    print(orjson.dumps({"rebuild": rebuild, "changes": changes}).decode())

uvloop.run(main(int(sys.argv[1])))
"""


def one_run(code: Path, env: dict, rounds: int) -> dict:
    done = subprocess.run([sys.executable, "-c", ROUND, str(rounds)], cwd=code, env={**env, "PYTHONPATH": str(code)},
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{code}: {done.stderr[-2000:]}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])


async def load_city(url: str, settings: Settings, n: int) -> None:
    redis = connect(url)
    await load_fanout_city(redis, Vault.of(settings), n)
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="a checkout of another commit")
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=2, help="processes per checkout")
    parser.add_argument("--rounds", type=int, default=5, help="changes and snapshots per process")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="bench-resident-index-"))
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(data / "gateway")})
    server = EmbeddedRedis(data / "gateway").start()
    codes = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in codes}
    try:
        asyncio.run(load_city(server.url, settings, args.residents))
        env = {**os.environ, **settings.env(), "GATEWAY_REDIS_URL": server.url}
        for run in range(args.runs):
            for name, code in codes if run % 2 == 0 else codes[::-1]:
                res = one_run(code, env, args.rounds)
                results[name].append(res)
                change = statistics.median(s for _, s in res["changes"])
                print(f"run {run + 1} {name:<8} rebuild {res['rebuild'][0]:6.1f} s, loop held up to "
                      f"{res['rebuild'][1] * 1000:6.1f} ms;  one change: loop held {change * 1000:6.1f} ms (median)"
                      f"   (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)

    print(f"\n{args.residents:,} residents, medians of {args.runs} processes per checkout")
    for name, runs in results.items():
        print(f"{name:<8} rebuild {statistics.median(r['rebuild'][0] for r in runs):6.1f} s, loop held up to "
              f"{statistics.median(r['rebuild'][1] for r in runs) * 1000:6.1f} ms;  a snapshot after one change "
              f"{statistics.median(s for r in runs for s, _ in r['changes']) * 1000:6.1f} ms, loop held "
              f"{statistics.median(s for r in runs for _, s in r['changes']) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
