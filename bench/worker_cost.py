"""CPU of one worker process and of Redis per first attempt and per escalation:
this checkout's engine against another's, in alternating rounds on one Redis
and one simulator.

    .venv/bin/python bench/worker_cost.py --baseline /tmp/old      # a checkout of an older commit

The fan-out bench (bench/fanout.py) measures the whole gateway over minutes,
and on a shared machine its phases land on different spells of load.  Here
each round runs the two engines one after the other, seconds apart, on the
same residents (feature phones, switched off, as in the fan-out bench): a
process plans and sends the SMS step to every resident in batches, then, once
the step's 1 s timeout has passed, runs the timer op for every resident (the
look-up of the lost receipt, the escalation, the call).  Printed per round and
as medians: the process's own CPU and Redis's CPU (INFO) over the residents.
No API, no Celery: the batch tasks' own work only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from fanout import SID, TOKEN, free_port, residents_ids, simulator  # noqa: E402
from scale import fanout_behaviour, load_fanout_city  # noqa: E402

from gateway.config import Settings  # noqa: E402
from gateway.crypto import Vault  # noqa: E402
from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.store import connect  # noqa: E402

# What one round runs in a process of its own, from the checkout it measures.
ROUND = r"""
import asyncio, json, os, sys, time
import aiohttp, orjson, uvloop
from gateway import keys
from gateway.config import Settings
from gateway.engine import Engine
from gateway.store import connect

async def redis_cpu(redis):
    info = await redis.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]

async def main(aid, rids, batch):
    settings = Settings.from_env()
    redis = connect(os.environ["GATEWAY_REDIS_URL"])
    engine = Engine(settings, redis)
    async with aiohttp.ClientSession() as http:
        engine.open_channels(http)
        doc = {"event": "Heat wave", "severity": "Moderate", "audience": {"everyone": True},
               "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다."}},
               "policy": {"channels": ["sms", "voice"], "step_timeouts": {"sms": 1, "voice": 3600}}}
        for a in (aid + "w", aid):
            await redis.hset(keys.alert(a), mapping={"doc": orjson.dumps(doc), "status": "active", "version": 1})
        # Warm up (connections, templates, caches) on another alert.
        await engine.plan_and_send(aid + "w", 0, rids[:batch])
        out = {}
        cpu, rcpu = time.process_time(), await redis_cpu(redis)
        for i in range(0, len(rids), batch):
            await engine.plan_and_send(aid, i, rids[i:i + batch])
        out["first"] = (time.process_time() - cpu, await redis_cpu(redis) - rcpu)
        await asyncio.sleep(1.2)  # every SMS step's 1 s deadline passes
        cpu, rcpu = time.process_time(), await redis_cpu(redis)
        for i in range(0, len(rids), batch):
            await engine.due(aid, [f"{rid}|0|t" for rid in rids[i:i + batch]])
        out["escalation"] = (time.process_time() - cpu, await redis_cpu(redis) - rcpu)
        counts = await redis.hgetall(keys.alert_counts(aid))
        out["calls"] = int(counts.get(b"a:voice:queued", 0))
        await engine.close()
    print(json.dumps(out))

uvloop.run(main(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])))
"""


def one_round(code: Path, env: dict, aid: str, rids: list[str], batch: int) -> dict:
    done = subprocess.run([sys.executable, "-c", ROUND, aid, ",".join(rids), str(batch)], cwd=code, env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{code}: {done.stderr[-2000:]}")
    out = orjson.loads(done.stdout.strip().splitlines()[-1])
    if out["calls"] != len(rids):
        raise SystemExit(f"{code}: {out['calls']} of {len(rids)} escalated to a call")
    n = len(rids)
    return {"first": out["first"][0] / n * 1e6, "first_redis": out["first"][1] / n * 1e6,
            "escalation": out["escalation"][0] / n * 1e6, "escalation_redis": out["escalation"][1] / n * 1e6}


async def load_city(redis_url: str, settings: Settings, n: int) -> None:
    redis = connect(redis_url)
    await load_fanout_city(redis, Vault.of(settings), n)
    await redis.aclose()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, metavar="DIR", help="a checkout of another commit")
    parser.add_argument("--residents", type=int, default=4000, help="residents a round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="bench-worker-cost-"))
    sim_port = free_port()
    sim = simulator(sim_port, fanout_behaviour(args.residents, data), data)
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(data / "gateway")})
    redis_server = EmbeddedRedis(data / "gateway").start()
    try:
        asyncio.run(load_city(redis_server.url, settings, args.residents))
        rids = residents_ids(args.residents)
        env = {**os.environ, **settings.env(), "GATEWAY_REDIS_URL": redis_server.url,
               "GATEWAY_PUBLIC_URL": "http://127.0.0.1:9", "TWILIO_API_BASE": f"http://127.0.0.1:{sim_port}",
               "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": "+15005550006",
               "GATEWAY_SMS_RATE_PER_SENDER": "1000000", "GATEWAY_SMS_RATE_PER_PROVIDER": "1000000",
               "GATEWAY_VOICE_CPS_PER_SENDER": "1000000", "GATEWAY_VOICE_CPS_PER_PROVIDER": "1000000"}
        codes = [("this", ROOT), ("baseline", args.baseline.resolve())]
        results: dict[str, list[dict]] = {name: [] for name, _ in codes}
        time.sleep(2)  # the simulator comes up
        for r in range(args.rounds):
            for name, code in codes if r % 2 == 0 else codes[::-1]:
                res = one_round(code, env, f"wc{r}{name[0]}", rids, args.batch)
                results[name].append(res)
                print(f"round {r + 1} {name:<8} first attempt {res['first']:6.0f} us + Redis {res['first_redis']:4.0f} us"
                      f"   escalation {res['escalation']:6.0f} us + Redis {res['escalation_redis']:4.0f} us"
                      f"   (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        redis_server.stop()
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(10)
        shutil.rmtree(data, ignore_errors=True)

    print(f"\nmedians of {args.rounds} rounds, {args.residents:,} residents a round; this/baseline: median of the per-round ratios")
    for key, title in (("first", "worker CPU per first attempt"), ("first_redis", "Redis CPU per first attempt"),
                       ("escalation", "worker CPU per escalation"), ("escalation_redis", "Redis CPU per escalation")):
        this = [x[key] for x in results["this"]]
        base = [x[key] for x in results["baseline"]]
        ratio = statistics.median(a / b for a, b in zip(this, base))
        print(f"{title:<30} this {statistics.median(this):6.0f} us  baseline {statistics.median(base):6.0f} us"
              f"  this/baseline {ratio:.2f}")
    both = [(x["first"] + x["first_redis"], y["first"] + y["first_redis"])
            for x, y in zip(results["this"], results["baseline"])]
    print(f"{'worker + Redis, first attempt':<30} this/baseline {statistics.median(a / b for a, b in both):.2f}")
    both = [(x["escalation"] + x["escalation_redis"], y["escalation"] + y["escalation_redis"])
            for x, y in zip(results["this"], results["baseline"])]
    print(f"{'worker + Redis, escalation':<30} this/baseline {statistics.median(a / b for a, b in both):.2f}")


if __name__ == "__main__":
    main()
