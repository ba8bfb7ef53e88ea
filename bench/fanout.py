"""Fan-out of one alert to 100,000 residents, with the figures issue 2 asks for.

    .venv/bin/python bench/fanout.py                       # 100,000 residents, 3 runs, medians
    .venv/bin/python bench/fanout.py --residents 20000 --runs 1     # quicker
    .venv/bin/python bench/fanout.py --baseline /tmp/old   # each run also measures another checkout's gateway

With --baseline DIR (a checkout of another commit, e.g. `git archive <commit> | tar -x -C DIR`)
each run measures that gateway too, on the same city and simulator, and prints new/old ratios.

In one run, on this machine, against the simulator on loopback (its own process):
1. the gateway (`gateway api` with the pump, `gateway worker`, embedded Redis)
   fans an SMS alert out to every resident: first attempts handed to the
   provider per second, gateway CPU per first attempt, API accept latency,
   Redis bytes per delivery;
2. nobody confirms, so every SMS step times out and the voice step starts:
   escalation lag (the voice send minus the SMS step's deadline);
3. the loopback ceiling: bare aiohttp clients, as many processes as the
   gateway has workers, posting to the same simulator as fast as they can;
4. a naive sender: one Celery task per message with the synchronous twilio
   client, as in the usual tutorials.
All three senders ask for status callbacks and the simulator loses them all
(the fault `lost_callbacks`), so all three do the same work and ask the same
of the simulator: hand messages over.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gateway import deliveries, keys  # noqa: E402
from gateway.agencies import create_agency  # noqa: E402
from gateway.alerts import resolve_audience  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.crypto import Vault  # noqa: E402
from gateway.embedded_redis import EmbeddedRedis  # noqa: E402
from gateway.registry import Registry, check_import  # noqa: E402
from gateway.store import connect  # noqa: E402

from backlog import Backlog, RedisLatency, slow_commands, slow_commands_begin  # noqa: E402

SID, TOKEN = "AC" + "0" * 31 + "1", "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A handset switched off: the network holds the SMS (Twilio says `sent`) and
# its receipt comes long after the step's timeout, so the step times out even
# when the gateway asks Twilio what became of it.
SWITCHED_OFF_S = 10**6


def city(n: int, out: Path) -> tuple[list[dict], Path]:
    """Feature-phone residents, switched off: SMS first, then a call nobody answers."""
    residents, lines = [], []
    for i in range(n):
        number = f"+82105{i:07d}"
        residents.append({"id": f"b{i:06d}", "languages": ["ko"], "district": f"D{i % 25:02d}",
                          "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]})
        lines.append(orjson.dumps({"resident": f"b{i:06d}", "phones": [number], "sms": {"delay_s": SWITCHED_OFF_S},
                                   "voice": {"answer": "no-answer"}}))
    behaviour = out / "behaviour.ndjson"
    behaviour.write_bytes(b"\n".join(lines))
    return residents, behaviour


def simulator(port: int, behaviour: Path, data: Path) -> subprocess.Popen:
    """The provider simulator for `city`'s residents, losing every status
    callback, so that every sender only hands messages over."""
    faults = data / "faults.json"
    faults.write_bytes(orjson.dumps({"twilio-sms": {"lost_callbacks": 1.0}, "twilio-voice": {"lost_callbacks": 1.0}}))
    return subprocess.Popen([sys.executable, "-m", "simulator", "--port", str(port), "--account-sid", SID,
                             "--auth-token", TOKEN, "--time-scale", "0.01", "--behaviour", str(behaviour),
                             "--faults", str(faults)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


class Tree:
    """CPU seconds of a process and all its children, summed."""

    def __init__(self, *procs: subprocess.Popen):
        self.roots = [psutil.Process(p.pid) for p in procs]

    def cpu(self) -> float:
        return sum(self.by_root())

    def by_root(self) -> list[float]:
        out = []
        for root in self.roots:
            total = 0.0
            for p in [root, *root.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            out.append(total)
        return out


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def post(http, url, auth, body) -> tuple[float, str]:
    began = time.perf_counter()
    async with http.post(url, json=body, headers=auth) as r:
        data = await r.json()
        assert r.status == 202, data
    return (time.perf_counter() - began) * 1000, data["id"]


async def wait_handed(http, url, auth, channel: str, target: int, timeout: float, label: str) -> list[tuple]:
    """Poll the alert until `target` attempts on `channel` got a provider answer."""
    series, began = [], time.monotonic()
    while time.monotonic() - began < timeout:
        async with http.get(url, headers=auth) as r:
            s = await r.json()
        c = s["channels"].get(channel, {})
        handed = c.get("queued", 0) + c.get("failed", 0)
        series.append((time.monotonic(), handed))
        print(f"\r  {label}: {handed:,}/{target:,}", end="", flush=True)
        if handed >= target:
            print()
            return series
        await asyncio.sleep(0.25)
    raise SystemExit(f"\n{label}: only {series[-1][1]} of {target} after {timeout:.0f} s")


def rate(series: list[tuple], target: int) -> tuple[float, float]:
    """(sends/s between the first send and the last, seconds taken)."""
    start = next(t for t, n in series if n > 0)
    end = series[-1][0]
    return target / max(end - start, 1e-9), end - start


async def escalation_lags(redis, aid: str, rids: list[str], sms_timeout_s: int) -> dict[str, list[float]]:
    """Per delivery (ms): the voice step's provider answer minus the SMS step's
    deadline ("lag"), split into the wait for the timer op to run ("pickup":
    pump, queue) and from there to the provider's answer ("send")."""
    out: dict[str, list[float]] = {"lag": [], "pickup": [], "send": []}
    for i in range(0, len(rids), 2000):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[i:i + 2000]:
            deliveries.queue_history(pipe, aid, rid)
        for raw in await pipe.execute():
            seen: dict[tuple[str, str], int] = {}
            for line in deliveries.history_lines(raw):
                at, k, _n, _leg, status = line.split("|")[:5]
                seen.setdefault((k, status), int(at))
            claimed, timed_out, voice = seen.get(("0", "claimed")), seen.get(("0", "timed_out")), seen.get(("1", "queued"))
            if claimed is not None and timed_out is not None and voice is not None:
                deadline = claimed + sms_timeout_s * 1000
                out["lag"].append(voice - deadline)
                out["pickup"].append(timed_out - deadline)
                out["send"].append(voice - timed_out)
    return out


def peak_rss_mb(proc: psutil.Process) -> float:
    """The most resident memory the process ever held (VmHWM), MB."""
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def gateway_phase(args, data: Path, sim_url: str, sim: psutil.Process, code: Path = ROOT) -> dict:
    """The gateway whose code is in `code` (this checkout, or --baseline's) on a fresh Redis."""
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(data)})
    redis_server = EmbeddedRedis(data).start()
    redis = connect(redis_server.url)
    broker = connect(f"{redis_server.url}?db=1")
    t = time.perf_counter()
    residents, _ = city(args.residents, data)
    city_s = time.perf_counter() - t
    vault = Vault.of(settings)
    t = time.perf_counter()
    registry = Registry(redis, vault)
    checked = check_import((i, r) for i, r in enumerate(residents))
    del residents
    for i in range(0, len(checked), 2000):
        await registry.put_many(checked[i:i + 2000])
    import_s = time.perf_counter() - t
    del checked
    t = time.perf_counter()
    audience = len(await resolve_audience(redis, {"everyone": True}, drill=False))
    audience_s = time.perf_counter() - t
    assert audience == args.residents, audience
    print(f"  city {city_s:.1f} s, import {import_s:.1f} s, audience selection {audience_s:.2f} s "
          f"({args.residents:,} residents)")
    redis_mem_residents = (await redis.info("memory"))["used_memory"]
    _, key = await create_agency(redis, "Bench city", rate_per_s=100_000)
    auth = {"Authorization": f"Bearer {key}"}

    api_port = free_port()
    env = {**os.environ, **settings.env(), "GATEWAY_REDIS_URL": redis_server.url,
           "GATEWAY_BROKER_URL": redis_server.broker_url(1), "GATEWAY_PORT": str(api_port),
           "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{api_port}", "TWILIO_API_BASE": sim_url,
           "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": "+15005550006",
           "GATEWAY_WORKER_CONCURRENCY": str(args.workers), "GATEWAY_BATCH_SIZE": str(args.batch),
           # The simulator has no rate limit to respect: pacing must not be what is measured.
           "GATEWAY_SMS_RATE_PER_SENDER": "1000000", "GATEWAY_SMS_RATE_PER_PROVIDER": "1000000",
           "GATEWAY_VOICE_CPS_PER_SENDER": "1000000", "GATEWAY_VOICE_CPS_PER_PROVIDER": "1000000"}
    # `python -m gateway` from `code` runs that checkout's gateway.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True, "cwd": code}
    api = subprocess.Popen([sys.executable, "-m", "gateway", "api"], env=env, **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env, **quiet)
    base = f"http://127.0.0.1:{api_port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # let the worker pool come up
            gateway = Tree(api, worker)
            redis_proc = psutil.Process(redis_server.proc.pid)
            mem0 = (await redis.info("memory"))["used_memory"]
            stats0 = await memory_stats(redis)
            commands0 = await redis.info("commandstats")
            cpu0, rcpu0 = gateway.cpu(), sum(redis_proc.cpu_times()[:2])
            split0 = gateway.by_root()
            sim0 = sum(sim.cpu_times()[:2])
            await slow_commands_begin(redis)
            pings = RedisLatency(str(redis_server.socket)).start()

            alert = {"event": "Heat wave", "severity": "Moderate",
                     "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다."}},
                     "audience": {"everyone": True},
                     "policy": {"channels": ["sms", "voice"],
                                "step_timeouts": {"sms": args.sms_timeout, "voice": 3600}}}
            latency, aid = await post(http, f"{base}/v1/alerts", auth, alert)
            posted = time.monotonic()
            # (when answered, monotonic s; ms taken)
            latencies = [(posted, latency)]
            probe = {**alert, "audience": {"residents": ["b000000"]}, "policy": {"channels": ["sms"]}}
            sampling = asyncio.Event()
            backlog = Backlog(redis, broker, aid)
            sampler = asyncio.create_task(backlog.run(sampling))

            async def probes():
                for _ in range(args.probes):
                    ms = (await post(http, f"{base}/v1/alerts", auth, probe))[0]
                    latencies.append((time.monotonic(), ms))
                    await asyncio.sleep(0.05)

            prober = asyncio.create_task(probes())
            if args.profile:
                profiler = asyncio.create_task(profile_workers(worker, api, args.profile, delay_s=args.profile_after))
            series = await wait_handed(http, f"{base}/v1/alerts/{aid}", auth, "sms", args.residents,
                                       max(1800, args.residents / 100), "first attempts")
            fanned = time.monotonic()
            slow_fanout = await slow_commands(redis)
            await prober
            cpu1, rcpu1 = gateway.cpu(), sum(redis_proc.cpu_times()[:2])
            split1 = gateway.by_root()
            sim1 = sum(sim.cpu_times()[:2])
            mem1 = (await redis.info("memory"))["used_memory"]
            commands = command_calls(commands0, await redis.info("commandstats"), args.residents)
            breakdown = await memory_breakdown(redis, aid, args.residents)
            stats1 = await memory_stats(redis)
            for name in stats1:
                breakdown[f"[{name}]"] = (stats1[name] - stats0.get(name, 0)) / args.residents
            first_rate, first_s = rate(series, args.residents)
            cores = os.cpu_count() or 1
            busy_first = (cpu1 - cpu0 + rcpu1 - rcpu0 + sim1 - sim0) / ((series[-1][0] - posted) * cores)

            # The escalations' own figures start just before the first SMS deadline
            # (a longer idle lead would understate how busy the machine is).
            await asyncio.sleep(max(0.0, posted + args.sms_timeout - 0.1 - time.monotonic()))
            cpu_e, rcpu_e, sim_e = gateway.cpu(), sum(redis_proc.cpu_times()[:2]), sum(sim.cpu_times()[:2])
            esc_began = time.monotonic()
            esc = await wait_handed(http, f"{base}/v1/alerts/{aid}", auth, "voice", args.residents,
                                    args.sms_timeout + max(1800, args.residents / 100), "escalations to voice")
            cpu2, rcpu2, sim2 = gateway.cpu(), sum(redis_proc.cpu_times()[:2]), sum(sim.cpu_times()[:2])
            busy_esc = (cpu2 - cpu_e + rcpu2 - rcpu_e + sim2 - sim_e) / ((esc[-1][0] - esc_began) * cores)
            esc_rate, _ = rate(esc, args.residents)
            sampling.set()
            await sampler
            pings.stop()
            if args.profile:
                await profiler
            lags = await escalation_lags(redis, aid, residents_ids(args.residents), args.sms_timeout)
            pool = psutil.Process(worker.pid).children()
            rss = {"api and pump": peak_rss_mb(psutil.Process(api.pid)),
                   "worker (parent)": peak_rss_mb(psutil.Process(worker.pid)),
                   "worker (largest child)": max((peak_rss_mb(k) for k in pool), default=0.0),
                   "redis": peak_rss_mb(redis_proc), "simulator": peak_rss_mb(sim)}
            redis_mem = (await redis.info("memory"))["used_memory"]
    finally:
        for proc in (api, worker):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in (api, worker):
            proc.wait(30)
        await redis.aclose()
        await broker.aclose()
        redis_server.stop()
    during = [ms for at, ms in latencies if at <= fanned]
    ping_fanout = pings.between(posted, fanned)
    return {
        "city_s": city_s, "import_s": import_s, "audience_s": audience_s, "rss": rss,
        "redis_mb": redis_mem / 2**20, "redis_residents_mb": redis_mem_residents / 2**20,
        "first_rate": first_rate, "first_s": first_s,
        "cpu_per_first_us": (cpu1 - cpu0) / args.residents * 1e6,
        "redis_cpu_per_first_us": (rcpu1 - rcpu0) / args.residents * 1e6,
        "api_cpu_per_first_us": (split1[0] - split0[0]) / args.residents * 1e6,
        "worker_cpu_per_first_us": (split1[1] - split0[1]) / args.residents * 1e6,
        "accept_p50": pct([ms for _, ms in latencies], 50), "accept_p99": pct([ms for _, ms in latencies], 99),
        "accept_n": len(latencies), "accept_during_n": len(during), "accept_during_p99": pct(during, 99),
        "ping_p50": pct(ping_fanout, 50), "ping_p99": pct(ping_fanout, 99), "ping_max": max(ping_fanout),
        "slow_fanout": slow_fanout, "backlog_esc": backlog.summary(esc_began, esc[-1][0], args.residents),
        "backlog_fanout": backlog.summary(posted, fanned, args.residents),
        "bytes_per_delivery": (mem1 - mem0) / args.residents,
        "sim_per_first_us": (sim1 - sim0) / args.residents * 1e6,
        "sim_per_escalation_us": (sim2 - sim_e) / args.residents * 1e6,
        "esc_rate": esc_rate, "cpu_per_escalation_us": (cpu2 - cpu_e) / args.residents * 1e6,
        "redis_per_escalation_us": (rcpu2 - rcpu_e) / args.residents * 1e6,
        "busy_first": busy_first, "busy_esc": busy_esc,
        "memory": breakdown, "commands": commands,
        **{f"{part}_p{q}": pct(lags[part], q) / 1000 for part in lags for q in (50, 99)}, "lag_n": len(lags["lag"]),
    }


async def profile_workers(worker: subprocess.Popen, api: subprocess.Popen, out: str, seconds: int = 10,
                          delay_s: float = 2) -> None:
    """py-spy samples of the worker pool, `delay_s` after the alert was posted, raw folded stacks into `out`;
    the API's (with the pump) into `out`.api."""
    await asyncio.sleep(delay_s)
    kids = psutil.Process(worker.pid).children()

    def record(pid: int, to: str):
        return asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-d", str(seconds), "-r", "250",
            "-f", "raw", "-o", to, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [await record(k.pid, f"{out}.{k.pid}") for k in kids] + [await record(api.pid, f"{out}.api")]
    for p in procs:
        await p.wait()
    with open(out, "w") as f:
        for k in kids:
            f.write(Path(f"{out}.{k.pid}").read_text())
            Path(f"{out}.{k.pid}").unlink()


def command_calls(before: dict, after: dict, n: int) -> dict[str, tuple[float, float]]:
    """Per first attempt, by Redis command: (calls, microseconds of Redis time), most time first."""
    out = {}
    for name, stat in after.items():
        calls = stat["calls"] - before.get(name, {}).get("calls", 0)
        if calls:
            out[name.removeprefix("cmdstat_")] = (calls / n, (stat["usec"] - before.get(name, {}).get("usec", 0)) / n)
    return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


async def memory_stats(redis) -> dict[str, float]:
    """Where used_memory goes, as MEMORY STATS tells it (dataset and overheads)."""
    out = {}
    for name, value in (await redis.memory_stats()).items():
        name = name.decode() if isinstance(name, bytes) else name
        if isinstance(value, int) and name.split(".")[0] in ("overhead", "clients", "aof", "dataset", "lua"):
            out[name] = value
        elif name.startswith("db.") and isinstance(value, dict):
            for k, v in value.items():
                out[f"{name}.{k.decode() if isinstance(k, bytes) else k}"] = v
    return out


async def memory_breakdown(redis, aid: str, n: int) -> dict[str, float]:
    """Bytes per delivery by kind of key, from MEMORY USAGE on a sample."""
    sample = residents_ids(n)[:: max(1, n // 200)]
    out: dict[str, float] = {}

    async def per_key(name: str, key_of) -> None:
        sizes = [await redis.memory_usage(key_of(rid)) or 0 for rid in sample]
        out[name] = sum(sizes) / len(sizes)

    await per_key("delivery hash (with its history)", lambda rid: keys.delivery(aid, rid))
    shared: dict[str, float] = defaultdict(float)
    async for key in redis.scan_iter(match=f"{keys.alert(aid)}:*", count=10_000):
        if b":d:" not in key:
            kind = key.decode().split("}:", 1)[1].split(":")[0]
            shared[kind] += (await redis.memory_usage(key, samples=0) or 0) / n
    return {**out, **{f"alert {kind}": size for kind, size in shared.items()}}


def residents_ids(n: int) -> list[str]:
    return [f"b{i:06d}" for i in range(n)]


def ceiling_phase(args, sim_url: str) -> float:
    """Bare aiohttp clients, one process per gateway worker, as fast as they go."""
    import multiprocessing as mp

    from simulator_capacity import client

    out = mp.Queue()
    share = args.ceiling_requests // args.workers
    # Each create asks for status callbacks, as the gateway's do: the simulator then does the same work for both.
    procs = [mp.Process(target=client, args=(sim_url, share, 64, True, out)) for _ in range(args.workers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results) / max(r[2] for r in results)


def naive_phase(args, data: Path, sim_url: str) -> float:
    """One Celery task per message, synchronous twilio client (bench/naive_sender.py)."""
    server = EmbeddedRedis(data / "naive").start()
    env = {**os.environ, "NAIVE_BROKER": server.broker_url(2), "NAIVE_REDIS": server.url,
           "TWILIO_API_BASE": sim_url, "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "naive_sender", "worker", "-c", str(args.workers),
                               "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                              cwd=ROOT / "bench", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        result = subprocess.run([sys.executable, "naive_sender.py", str(args.naive)], cwd=ROOT / "bench", env=env,
                                capture_output=True, text=True, timeout=1800, check=True)
        return float(result.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        server.stop()


# The figures issue 13 judges, as (label, key, format); medians over runs are printed for these.
HEADLINE = [
    ("gateway + Redis CPU per first attempt (us)", "cost_first", "{:.0f}"),
    ("gateway + Redis CPU per escalation (us)", "cost_esc", "{:.0f}"),
    ("first attempts / loopback ceiling", "vs_ceiling", "{:.2f}"),
    ("first attempts / naive sender", "vs_naive", "{:.1f}"),
    ("first attempts per second", "first_rate", "{:,.0f}"),
    ("accept p99 (ms)", "accept_p99", "{:.1f}"),
    ("Redis PING p99 in the fan-out (ms)", "ping_p99", "{:.2f}"),
    ("escalation lag p99 (s)", "lag_p99", "{:.2f}"),
    ("Redis bytes per delivery", "bytes_per_delivery", "{:.0f}"),
    ("load average (1 min) at the start", "load_before", "{:.2f}"),
]


def one_run(args, code: Path, label: str) -> dict:
    """Ceiling, gateway, ceiling again, naive sender: one simulator, one city."""
    data = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    _, behaviour = city(args.residents, data)
    sim = simulator(sim_port, behaviour, data)
    time.sleep(3)
    load_before = os.getloadavg()
    try:
        # The ceiling before and after the gateway, the higher kept: a shared
        # machine's slow spell must not flatter the gateway's ratio.
        print(f"[{label}] loopback ceiling ... (load {load_before[0]:.2f})")
        ceilings = [ceiling_phase(args, sim_url)]
        print(f"[{label}] gateway from {code}: {args.residents:,} residents, {args.workers} workers, "
              f"batches of {args.batch}")
        g = asyncio.run(gateway_phase(args, data / "gateway", sim_url, psutil.Process(sim.pid), code))
        print(f"[{label}] loopback ceiling again ...")
        ceilings.append(ceiling_phase(args, sim_url))
        print(f"[{label}] naive sender ...")
        naive = naive_phase(args, data, sim_url)
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    ceiling = max(ceilings)
    return {**g, "ceilings": ceilings, "ceiling": ceiling, "naive": naive, "vs_ceiling": g["first_rate"] / ceiling,
            "vs_naive": g["first_rate"] / naive, "load_before": load_before[0], "load_after": os.getloadavg()[0],
            "cost_first": g["cpu_per_first_us"] + g["redis_cpu_per_first_us"],
            "cost_esc": g["cpu_per_escalation_us"] + g["redis_per_escalation_us"],
            "bench_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def table(args, g: dict, label: str) -> None:
    ceilings, ceiling, naive = g["ceilings"], g["ceiling"], g["naive"]
    rows = [
        ("first attempts handed to the provider", f"{g['first_rate']:,.0f}/s ({g['first_s']:.1f} s)", ""),
        ("  vs loopback ceiling", (f"{g['vs_ceiling']:.2f} of {ceiling:,.0f}/s "
                                 f"(before {ceilings[0]:,.0f}, after {ceilings[1]:,.0f})"), ">= 0.7"),
        ("  vs naive sender", f"{g['vs_naive']:.1f}x of {naive:,.0f}/s", "(reported)"),
        ("gateway + Redis CPU per first attempt", f"{g['cost_first']:.0f} us", "<= 250 us"),
        ("  gateway CPU", f"{g['cpu_per_first_us']:.0f} us", ""),
        ("  of which workers / API and pump", f"{g['worker_cpu_per_first_us']:.0f} us / {g['api_cpu_per_first_us']:.0f} us", ""),
        ("  Redis CPU", f"{g['redis_cpu_per_first_us']:.0f} us", ""),
        ("  Redis commands per first attempt", ", ".join(f"{name} {calls:.2f} ({usec:.0f} us)" for name, (calls, usec)
                                                        in list(g["commands"].items())[:6]), ""),
        ("  (and the simulator, not counted above)", f"{g['sim_per_first_us']:.0f} us", ""),
        ("API accept latency", f"p50 {g['accept_p50']:.1f} ms, p99 {g['accept_p99']:.1f} ms (n={g['accept_n']})",
         "p99 < 50 ms"),
        ("  probes answered during the fan-out", f"{g['accept_during_n']:,}, p99 {g['accept_during_p99']:.1f} ms", ""),
        ("  Redis PING during the fan-out", f"p50 {g['ping_p50']:.2f} ms, p99 {g['ping_p99']:.2f} ms, "
                                            f"max {g['ping_max']:.1f} ms", ""),
        ("  commands over 1 ms in the fan-out", ", ".join(f"{name} {n} (up to {ms:.1f} ms)" for name, (n, ms)
                                                        in list(g["slow_fanout"].items())[:4]) or "none", ""),
        ("  tasks queued in the fan-out, peak", f"steps {g['backlog_fanout']['steps_peak']}, "
                                                f"fan-out {g['backlog_fanout']['fanout_peak']}", ""),
        ("Redis bytes per delivery", f"{g['bytes_per_delivery']:.0f} B", "< 1024 B"),
        ("gateway + Redis CPU per escalation", f"{g['cost_esc']:.0f} us", "<= per first attempt"),
        ("  escalations to the next step", f"{g['esc_rate']:,.0f}/s, {g['cpu_per_escalation_us']:.0f} us CPU each", ""),
        ("  (and Redis, the simulator per call)", (f"{g['redis_per_escalation_us']:.0f} us, "
                                                  f"{g['sim_per_escalation_us']:.0f} us"), ""),
        ("machine busy (gateway, Redis, simulator)", (f"fan-out {g['busy_first']:.0%}, escalations {g['busy_esc']:.0%} "
                                                     "of all cores"), ""),
        ("load average (1 min), start / end", f"{g['load_before']:.2f} / {g['load_after']:.2f}", ""),
        ("escalation lag", f"p50 {g['lag_p50']:.2f} s, p99 {g['lag_p99']:.2f} s (n={g['lag_n']:,})", "p99 < 2 s"),
        ("  deadline to the timer op (pump, queue)", f"p50 {g['pickup_p50']:.2f} s, p99 {g['pickup_p99']:.2f} s", ""),
        ("  timer op to the provider's answer", f"p50 {g['send_p50']:.2f} s, p99 {g['send_p99']:.2f} s", ""),
        ("  timers due and not fired by the pump", f"peak {g['backlog_esc']['due_peak']:,}, "
                                                   f"{g['backlog_esc']['due_wait_s']:.2f} s a resident", ""),
        ("  tasks queued in the escalations, peak", f"steps {g['backlog_esc']['steps_peak']}, "
                                                    f"fan-out {g['backlog_esc']['fanout_peak']}", ""),
        ("city generated / imported / audience selected", (f"{g['city_s']:.1f} s / {g['import_s']:.1f} s / "
                                                          f"{g['audience_s']:.2f} s"), ""),
        ("Redis used memory: residents / at the end", f"{g['redis_residents_mb']:,.0f} MB / {g['redis_mb']:,.0f} MB", ""),
        ("peak RSS", ", ".join(f"{name} {mb:,.0f} MB" for name, mb in g["rss"].items())
         + f", bench {g['bench_rss_mb']:,.0f} MB", ""),
    ]
    rows += [(f"  {name}", f"{size:.0f} B", "") for name, size in sorted(g["memory"].items(), key=lambda x: -x[1])]
    width = max(len(r[0]) for r in rows)
    print(f"\n[{label}] fan-out of {args.residents:,} residents, {args.workers} workers, {os.cpu_count()} cores")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<48} {target}")


def main() -> None:
    # Killed or interrupted, still stop the processes started (they have sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs; the headline figures are their medians")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="a checkout of another commit: each run measures its gateway too, and the ratios")
    parser.add_argument("--workers", type=int, default=Settings.worker_concurrency,
                        help="gateway worker processes (and ceiling clients); default the gateway's own, cores + 1")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--sms-timeout", type=int, default=90, help="seconds before the SMS step times out")
    parser.add_argument("--probes", type=int, default=1000, help="small alerts posted during the fan-out")
    parser.add_argument("--ceiling-requests", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=3_000, help="messages for the naive sender")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the workers during the fan-out (pip install py-spy)")
    parser.add_argument("--profile-after", type=float, default=2.0, metavar="S",
                        help="start profiling this long after the alert (past --sms-timeout: the escalations)")
    args = parser.parse_args()

    codes = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in codes}
    for run in range(args.runs):
        # Alternated, so a slow spell of the shared machine does not land on one side only.
        for name, code in codes if run % 2 == 0 else codes[::-1]:
            label = f"run {run + 1}, {name}"
            results[name].append(one_run(args, code, label))
            table(args, results[name][-1], label)

    print(f"\nmedians of {args.runs} run(s), {args.residents:,} residents; every run printed above")
    width = max(len(h[0]) for h in HEADLINE)
    for title, key, fmt in HEADLINE:
        line = f"{title:<{width}}  "
        for name, _ in codes:
            values = [r[key] for r in results[name]]
            line += f"{name} {fmt.format(statistics.median(values))} [{', '.join(fmt.format(v) for v in values)}]  "
        if args.baseline:
            ratio = statistics.median(results["this"][i][key] / results["baseline"][i][key]
                                      for i in range(args.runs))
            line += f"this/baseline {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
