"""What reopening costs: the unreachable of one alert reopened in place on a
new step (transitions.lua, op reopen), per delivery, on an embedded Redis.

    .venv/bin/python bench/reopen.py                # 10,000 deliveries
    .venv/bin/python bench/reopen.py --deliveries 100000

Prints the wall time per delivery (client and Redis) and the Redis time
alone (INFO commandstats, EVALSHA usec), and checks the alert's counts tell
one story: targeted unchanged, every unreachable now in progress.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import keys  # noqa: E402
from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.reopen import CHUNK  # noqa: E402
from gateway.store import connect  # noqa: E402
from gateway.transitions import Transitions  # noqa: E402

SMS = [{"l": [["sms", 0]], "t": 60}]
VOICE = [{"l": [["voice", 0]], "t": 600}]


async def evalsha_usec(redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("usec", 0))


async def run(url: str, n: int) -> None:
    redis = connect(url)
    t = Transitions(redis)
    rids = [f"r{i:07d}" for i in range(n)]
    for i in range(0, n, CHUNK):
        await t.plan("bench", 4, 1, [(rid, i + j, SMS, "planned") for j, rid in enumerate(rids[i:i + CHUNK])])
        pipe = redis.pipeline(transaction=False)
        await t.close(pipe, "bench", rids[i:i + CHUNK], "unreachable")
        await pipe.execute()
    await redis.hset(keys.alert("bench"), "status", "done")
    usec, start = await evalsha_usec(redis), time.perf_counter()
    for i in range(0, n, CHUNK):
        pipe = redis.pipeline(transaction=False)
        await t.reopen(pipe, "bench", [(rid, VOICE) for rid in rids[i:i + CHUNK]], "bench")
        await pipe.execute()
    wall, usec = time.perf_counter() - start, await evalsha_usec(redis) - usec
    counts = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.alert_counts("bench"))).items()}
    assert (counts["targeted"], counts["unreachable"], counts["in_progress"]) == (n, 0, n), counts
    print(f"reopened {n:,} deliveries: {wall / n * 1e6:.0f} us each in all, {usec / n:.0f} us of it in Redis")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        try:
            asyncio.run(run(server.url, args.deliveries))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
