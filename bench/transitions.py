"""Redis time per delivery of each batch op in transitions.lua: the working
tree's script against another revision's, in alternating rounds on one
embedded Redis (the usec that INFO commandstats counts for EVALSHA).

    .venv/bin/python bench/transitions.py                 # against HEAD
    .venv/bin/python bench/transitions.py --base c62db85  # against an older script

Each round plans and claims a batch of SMS-then-voice deliveries, records the
SMS as queued, lets the SMS step time out, escalates (timer op: time out,
next step and claim in one call) and records the call as queued.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.store import connect  # noqa: E402
from gateway.transitions import CLAIM_LEASE_MS, LUA, Event, Transitions  # noqa: E402

PLAN = [{"l": [["sms", 0]], "t": 1}, {"l": [["voice", 0]], "t": 60}]
PLAN_JSON = orjson.dumps(PLAN)
OPS = ("plan", "event", "timer")


async def evalsha_usec(redis) -> tuple[int, int]:
    """EVALSHA's microseconds, and the calls of the commands the scripts ran."""
    stats = await redis.info("commandstats")
    inside = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_info"))
    return stats.get("cmdstat_evalsha", {}).get("usec", 0), inside


async def one_round(redis, script: str, aid: str, n: int) -> dict[str, float]:
    t = Transitions(redis)
    t.script = redis.register_script(script)
    rids = [f"r{i:06d}" for i in range(n)]
    used: dict[str, float] = {}

    async def measured(op: str, run) -> None:
        usec, calls = await evalsha_usec(redis)
        await run()
        usec2, calls2 = await evalsha_usec(redis)
        used[op] = used.get(op, 0) + (usec2 - usec) / n
        used[op + " commands"] = used.get(op + " commands", 0) + (calls2 - calls) / n

    async def queued(step: int) -> None:
        for i in range(0, n, 200):
            pipe = redis.pipeline(transaction=False)
            channel, ref = PLAN[step]["l"][0][0], "SM1" if step == 0 else "CA1"
            await t.event(pipe, aid, [Event(rid, step, 0, 0, "queued", False, "twilio", ref, None, channel)
                                      for rid in rids[i:i + 200]])
            await pipe.execute()

    async def plan() -> None:
        for i in range(0, n, 200):
            # The op itself: the replies of older scripts are shaped otherwise than Transitions.plan reads.
            pipe = redis.pipeline(transaction=False)
            await t._queue(pipe, aid, ["plan", 4, 3, CLAIM_LEASE_MS],
                           [[rid, i + j, PLAN_JSON, "planned"] for j, rid in enumerate(rids[i:i + 200])])
            await pipe.execute()

    async def escalate() -> None:
        for i in range(0, n, 200):
            pipe = redis.pipeline(transaction=False)
            replies = await t.timer(pipe, aid, [f"{rid}|0|t" for rid in rids[i:i + 200]])
            results = replies.of(await pipe.execute())
            assert all(isinstance(r, list) for r in results), results[:3]

    await measured("plan", plan)
    await measured("event", lambda: queued(0))
    await asyncio.sleep(1.1)  # the SMS step's 1 s runs out
    await measured("timer", escalate)
    await measured("event", lambda: queued(1))
    used["event"] /= 2
    used["event commands"] /= 2
    return used


async def main(base: str, n: int, rounds: int) -> None:
    old = subprocess.run(["git", "show", f"{base}:gateway/transitions.lua"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-transitions-"))).start()
    redis = connect(server.url)
    try:
        totals = {name: {} for name in (base, "working tree")}
        for r in range(rounds):
            for name, script in ((base, old), ("working tree", LUA)):
                used = await one_round(redis, script, f"{name[:8]}-{r}", n)
                for key, value in used.items():
                    totals[name][key] = totals[name].get(key, 0.0) + value / rounds
        print(f"Redis time per delivery, {n:,} deliveries x {rounds} rounds (commands: those the scripts ran)")
        for op in OPS:
            a, b = totals[base][op], totals["working tree"][op]
            ca, cb = totals[base][op + " commands"], totals["working tree"][op + " commands"]
            print(f"  {op:<6} {base}: {a:5.1f} us, {ca:4.1f} commands   working tree: {b:5.1f} us, {cb:4.1f} commands"
                  f"   ({b / a:.2f}, {cb / ca:.2f})")
    finally:
        await redis.aclose()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="git revision whose transitions.lua to compare with")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    began = time.perf_counter()
    asyncio.run(main(args.base, args.deliveries, args.rounds))
    print(f"({time.perf_counter() - began:.0f} s)")
