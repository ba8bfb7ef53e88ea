"""How long `gateway keys reseal` takes: residents sealed with an old key,
re-sealed with a new one, on an embedded Redis of its own.

    .venv/bin/python -m bench.reseal [--residents 20000] [--page 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from gateway.cli import reseal
from gateway.config import Settings
from gateway.crypto import Vault
from gateway.embedded_redis import EmbeddedRedis
from gateway.registry import Registry
from gateway.store import connect


def resident(i: int) -> dict:
    return {"id": f"r{i:06d}", "languages": ["ko"], "district": "11110", "name": "김영희",
            "contacts": [{"type": "phone", "number": f"+8210{55500000 + i}", "handset": "smartphone"},
                         {"type": "postal", "lines": ["세종대로 209", "서울특별시 종로구"], "postcode": "03151"}]}


async def run(url: str, data: Path, count: int, page: int) -> None:
    old, new, lookup = os.urandom(32), os.urandom(32), os.urandom(32)
    redis = connect(url)
    try:
        registry = Registry(redis, Vault(old, lookup))
        for i in range(0, count, 1000):
            await registry.put_many([resident(n) for n in range(i, min(i + 1000, count))])
        settings = Settings(data_dir=data, redis_url=url, contact_key=new, contact_keys_old=(old,), lookup_key=lookup)
        wall, cpu = time.perf_counter(), time.process_time()
        resealed, seen, _ = await reseal(settings, page, redis)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await redis.aclose()
    print(f"re-sealed {resealed} of {seen} residents in {wall:.2f} s ({seen / wall:,.0f}/s), "
          f"{cpu / seen * 1e6:.0f} us CPU a resident in the command")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            asyncio.run(run(server.url, Path(tmp), args.residents, args.page))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
