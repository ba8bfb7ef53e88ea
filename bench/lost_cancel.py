"""How often a task's cancel is lost inside redis-py on this Python (tests/test_stopping.py).

    .venv/bin/python bench/lost_cancel.py          # 100 cancels per kind of call, on the embedded Redis

A task loops on one kind of Redis call and is cancelled after a random
0-3 ms. redis-py wraps each write in `asyncio.wait_for` (its socket timeout
is 5 s unless set), and on Python 3.11 wait_for returns normally when the
write it waits for finishes in the tick the cancel lands (CPython gh-86296),
so the task runs on. This prints, per kind of call,
how many cancels were lost. Python 3.12's wait_for no longer loses them; the
gateway's loops stop on an event either way.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.store import connect  # noqa: E402

CALLS = {
    "GET": lambda r: r.get("k0"),
    "pipeline of 500 HMGET": lambda r: _pipeline(r),
    "ZRANGEBYLEX": lambda r: r.zrangebylex("z", "-", "+", start=0, num=10),
}


async def _pipeline(redis):
    pipe = redis.pipeline(transaction=False)
    for i in range(500):
        pipe.hmget(f"h{i}", "p", "x")
    return await pipe.execute()


async def lost(redis, call, trials: int) -> int:
    async def loop():
        while True:
            await call(redis)

    count = 0
    for _ in range(trials):
        task = asyncio.create_task(loop())
        await asyncio.sleep(random.random() * 0.003)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=0.2)
        if not done:  # still running: the cancel was lost
            count += 1
        while not done:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=0.2)
    return count


async def main(trials: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedRedis(Path(data)).start()
        redis = connect(server.url)
        try:
            await redis.set("k0", "v")
            for kind, call in CALLS.items():
                print(f"{kind:>22}: {await lost(redis, call, trials):4d} of {trials} cancels lost", flush=True)
        finally:
            await redis.aclose()
            server.stop()
    print(f"Python {sys.version.split()[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    asyncio.run(main(parser.parse_args().trials))
