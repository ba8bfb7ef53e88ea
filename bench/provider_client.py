"""Client CPU per Twilio Messages create, by HTTP client, in one run.

    .venv/bin/python bench/provider_client.py [--requests 6000]

The simulator runs in its own process on loopback (status callbacks off);
this process sends `--requests` creates with 64 in flight through each
client and prints its own CPU time per request, the simulator's, and the
ratio to the twilio library's stock async client.  Why channels/http1.py
exists: the provider request is the largest cost of a fan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import orjson
import psutil
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from fanout import SID, TOKEN, free_port  # noqa: E402
from twilio.http.async_http_client import AsyncTwilioHttpClient  # noqa: E402
from twilio.rest import Client  # noqa: E402

from channels.http1 import Http1Client  # noqa: E402
from channels.twilio import TwilioHttp  # noqa: E402

BODY = "폭염 경보: 오늘 낮 기온이 38도까지 오릅니다."
CALLBACK = "http://127.0.0.1:9/hooks/twilio/status/a/r/0/0/0"


def form(i: int) -> dict[str, str]:
    return {"To": f"+82105{i:07d}", "From": "+15005550006", "Body": BODY, "StatusCallback": CALLBACK}


async def measure(sim: psutil.Process, send, requests: int, concurrency: int = 64) -> tuple[float, float, float]:
    """(client us/request, simulator us/request, requests/s)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await send(i)

    await asyncio.gather(*(one(i) for i in range(300)))  # connections up, code warm
    sim0, cpu0, wall0 = sum(sim.cpu_times()[:2]), time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    sim1, cpu1, wall1 = sum(sim.cpu_times()[:2]), time.process_time(), time.perf_counter()
    return (cpu1 - cpu0) / requests * 1e6, (sim1 - sim0) / requests * 1e6, requests / (wall1 - wall0)


async def main(url: str, sim: psutil.Process, requests: int) -> None:
    endpoint = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()

    def twilio(http) -> Client:
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = url
        return client

    stock, lean = twilio(AsyncTwilioHttpClient(pool_connections=True)), twilio(TwilioHttp())
    session, http1 = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)), Http1Client()

    async def bare_aiohttp(i):
        async with session.post(endpoint, data=form(i), headers={"Authorization": auth}) as r:
            await r.read()

    async def bare_http1(i):
        await http1.request("POST", endpoint, body=urlencode(form(i)).encode(),
                            headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})

    def via(client):
        async def send(i):
            await client.messages.create_async(to=f"+82105{i:07d}", from_="+15005550006", body=BODY,
                                               status_callback=CALLBACK)
        return send

    rows = []
    for name, send in (("twilio library, its own async client (aiohttp)", via(stock)),
                       ("twilio library, the gateway's client (http1)", via(lean)),
                       ("bare aiohttp, no twilio library", bare_aiohttp),
                       ("bare http1, no twilio library", bare_http1)):
        rows.append((name, *await measure(sim, send, requests)))
        print(f"  {name}: done", flush=True)
    await session.close()
    await http1.close()
    if stock.http_client.session is not None:
        await stock.http_client.session.close()
    await lean.http_client.close()

    base = rows[0][1]
    print(f"\nclient CPU per Messages create ({requests:,} requests, 64 in flight, {os.cpu_count()} cores)")
    print(f"{'client':<50} {'client us':>9} {'ratio':>6} {'simulator us':>12} {'req/s':>7}")
    for name, client_us, sim_us, rate in rows:
        print(f"{name:<50} {client_us:>9.0f} {client_us / base:>6.2f} {sim_us:>12.0f} {rate:>7,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    port = free_port()
    faults = Path(tempfile.mkdtemp(prefix="bench-client-")) / "faults.json"
    faults.write_bytes(orjson.dumps({"twilio-sms": {"lost_callbacks": 1.0}}))
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "--port", str(port), "--account-sid", SID,
                             "--auth-token", TOKEN, "--time-scale", "0.01", "--faults", str(faults)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(3)
        uvloop.run(main(f"http://127.0.0.1:{port}", psutil.Process(proc.pid), args.requests))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
