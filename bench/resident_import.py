"""A city's resident file with 1% bad rows, imported twice through the API
with `bad_rows=skip`: the good rows land, each bad row is named by line and
field, and the second run writes nothing.

    .venv/bin/python bench/resident_import.py              # 100,000 rows
    .venv/bin/python bench/resident_import.py --rows 20000

Runs the API in this process on loopback over an embedded Redis; prints the
time of each run, its counts, and whether the registry's keys changed between
the runs (a digest of every value the registry writes).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import service  # noqa: E402
from gateway.agencies import create_agency  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.store import connect  # noqa: E402
from tests.e2e.test_resident_import import city_file, registry_digest  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        body, bad = city_file(rows, tmp / "city")
        print(f"{rows:,} rows ({len(body) / 1e6:.1f} MB), {len(bad):,} bad, made in {time.perf_counter() - t:.1f} s")
        settings = Settings.from_env({"GATEWAY_DATA_DIR": str(tmp / "data"), "GATEWAY_PORT": str(free_port())})
        urls = service.urls(settings)
        redis = connect(urls.redis)
        try:
            async with service.api_server(settings, urls, with_pump=False):
                _, key = await create_agency(redis, "Bench city", rate_per_s=10_000)
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as http:
                    digests = []
                    for run_no in (1, 2):
                        t = time.perf_counter()
                        async with http.post(f"{settings.public_url}/v1/residents/import?bad_rows=skip", data=body,
                                             headers={"Authorization": f"Bearer {key}",
                                                      "Content-Type": "application/x-ndjson"}) as r:
                            out = await r.json()
                        took = time.perf_counter() - t
                        named = {e["line"]: e["field"] for e in out["errors"]}
                        print(f"run {run_no}: {took:.1f} s, imported {out['imported']:,} (created {out['created']:,}, "
                              f"updated {out['updated']:,}, unchanged {out['unchanged']:,}), "
                              f"{out['bad_lines']:,} bad lines named, each with its field: {named == bad}")
                        digests.append(await registry_digest(redis))
                    print(f"registry keys {digests[0][0]:,}; second run changed nothing: {digests[0] == digests[1]}")
        finally:
            await redis.aclose()
            if urls.embedded:
                urls.embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().rows))


if __name__ == "__main__":
    main()
