"""How many Messages.json creates per second the simulator sustains on loopback.

The simulator runs in its own process (as under `gateway simulate`), so the
load generator does not share its event loop; client processes each keep
`--concurrency` requests in flight until `--requests` are done, then the bench
prints requests/s and latency percentiles. With `--callbacks` every message
also asks for status callbacks, received by a sink in the client processes
(the simulator then makes two more requests per message).

    .venv/bin/python bench/simulator_capacity.py --requests 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import SimConfig, start  # noqa: E402

ACCOUNT_SID = SimConfig.account_sid
AUTH_TOKEN = SimConfig.auth_token


def serve(port_out: mp.Queue, stop: mp.Event) -> None:
    async def main() -> None:
        # Delivery in 1 ms of real time, so the bench also exercises the timers.
        runner, port = await start(SimConfig(port=0, time_scale=0.001, seed=1))
        port_out.put(port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()
        # Busy share of the simulator's one core: does the simulator or the load generator limit the figure?
        port_out.put(time.process_time())

    asyncio.run(main())


async def load(url: str, count: int, concurrency: int, callbacks: bool, out: mp.Queue) -> None:
    sink_hits = 0

    async def sink(_: web.Request) -> web.Response:
        nonlocal sink_hits
        sink_hits += 1
        return web.Response()

    callback_url = None
    if callbacks:
        app = web.Application()
        app.router.add_post("/status", sink)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        callback_url = f"http://127.0.0.1:{runner.addresses[0][1]}/status"

    auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    endpoint = f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    latencies: list[float] = []
    errors = 0
    remaining = count

    async def worker(http: aiohttp.ClientSession, n: int) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            form = {"To": f"+8210{n:04d}{remaining % 10000:04d}", "From": "+15005550006", "Body": "Heat warning: drink water."}
            if callback_url:
                form["StatusCallback"] = callback_url
            began = time.perf_counter()
            async with http.post(endpoint, data=form, headers={"Authorization": auth}) as resp:
                await resp.read()
                if resp.status != 201:
                    errors += 1
            latencies.append(time.perf_counter() - began)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http, n) for n in range(concurrency)))
        elapsed = time.perf_counter() - began
    if callbacks:
        # Let the last callbacks land before counting them.
        await asyncio.sleep(1.0)
        await runner.cleanup()
    out.put((len(latencies), errors, elapsed, latencies, sink_hits))


def client(url: str, count: int, concurrency: int, callbacks: bool, out: mp.Queue) -> None:
    asyncio.run(load(url, count, concurrency, callbacks, out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--callbacks", action="store_true")
    args = parser.parse_args()

    ports, stop, results = mp.Queue(), mp.Event(), mp.Queue()
    server = mp.Process(target=serve, args=(ports, stop), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}"
    share = args.requests // args.clients
    clients = [
        mp.Process(target=client, args=(url, share, args.concurrency, args.callbacks, results))
        for _ in range(args.clients)
    ]
    for proc in clients:
        proc.start()
    outcomes = [results.get(timeout=600) for _ in clients]
    for proc in clients:
        proc.join()
    stop.set()
    server_cpu = ports.get(timeout=30)
    server.join(timeout=10)

    done = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    elapsed = max(o[2] for o in outcomes)
    latencies = sorted(lat for o in outcomes for lat in o[3])
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"simulator capacity: {done / elapsed:,.0f} Messages.json creates/s "
        f"({done} requests, {errors} errors, {args.clients}x{args.concurrency} in flight, {elapsed:.1f} s); "
        f"latency p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms; "
        # On a busy machine the wall-clock figure understates; creates per CPU-second does not.
        f"simulator CPU {server_cpu:.1f} s = {done / server_cpu:,.0f} creates per CPU-second"
        + (f"; {sum(o[4] for o in outcomes)} status callbacks received" if args.callbacks else "")
    )


if __name__ == "__main__":
    main()
