"""`gateway demo`: a virtual city, a heat-wave alert, live progress, a summary.

Everything real but the providers: embedded Redis, a Celery worker, the API
and pump, and the simulator in its own process playing Twilio and the city.
Simulated time runs 20x faster than the gateway's step timeouts.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import sys
import time

import aiohttp
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from . import samples, service
from .agencies import create_agency
from .config import Settings
from .resident_import import import_file
from .store import connect
from .transitions import TERMINAL

SIM_TIME_SCALE = 0.05
# Letters take an hour or two to be posted; the demo's print house runs faster.
PRINTHOUSE_TIME_SCALE = 0.005
STEP_TIMEOUTS = {"push": 20, "sms": 20, "voice": 45, "mail": 60}
CHANNELS = ("push", "sms", "voice", "mail")
DEADLINE_S = 300


def heat_wave_alert() -> dict:
    return samples.heat_wave({"everyone": True}, languages=tuple(samples.HEAT_WAVE_TEXT), urgency="Immediate",
                             certainty="Observed", policy={"step_timeouts": STEP_TIMEOUTS})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(count: int, seed: int, as_json: bool, console: Console) -> int:
    return service.run(_demo(count, seed, as_json, console))


async def _demo(count: int, seed: int, as_json: bool, console: Console) -> int:
    from simulator.city import generate

    base = Settings.from_env()
    data = base.data_dir / "demo"
    shutil.rmtree(data, ignore_errors=True)
    api_port, sim_port = _free_port(), _free_port()
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    sim_url = f"http://127.0.0.1:{sim_port}"
    settings = base.with_(
        data_dir=data, redis_url=None, broker_url=None, api_port=api_port,
        public_url=f"http://127.0.0.1:{api_port}", twilio_api_base=sim_url,
        twilio_account_sid=sid, twilio_auth_token=token, twilio_from_number="+15005550006",
        fcm_service_account=str(data / "fcm-service-account.json"), fcm_base=sim_url,
        printhouse=str(data / "printhouse"), mail_urgent_every_s=3.0, mail_poll_s=1.0,
        # The simulated carriers have no rate limits to respect.
        sms_rate_per_sender=5000.0, sms_rate_per_provider=5000.0,
        voice_cps_per_sender=1000.0, voice_cps_per_provider=1000.0)
    console.print(f"[bold]Virtual city[/]: {count} residents (synthetic), seed {seed}")
    files = generate(count, seed, data / "city", sim_base_url=f"http://127.0.0.1:{sim_port}")
    u = service.urls(settings)
    redis = connect(u.redis)
    await import_file(settings, files.residents, "ndjson", redis)
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(sim_port), "--gateway-url", settings.public_url,
         "--time-scale", str(SIM_TIME_SCALE), "--seed", str(seed), "--behaviour", str(files.behaviour),
         "--account-sid", sid, "--auth-token", token, "--fcm-service-account", settings.fcm_service_account,
         "--printhouse-dir", settings.printhouse, "--printhouse-time-scale", str(PRINTHOUSE_TIME_SCALE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    started = time.monotonic()
    try:
        # The simulator writes the FCM service account the gateway's push channel reads.
        await _wait_http(f"http://127.0.0.1:{sim_port}/_sim/stats")
        worker = service.spawn_worker(settings, u, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with service.api_server(settings, u), aiohttp.ClientSession() as http:
            _, key = await create_agency(redis, "Seoul Metropolitan Government", rate_per_s=1000)
            auth = {"Authorization": f"Bearer {key}"}
            async with http.post(f"{settings.public_url}/v1/alerts", json=heat_wave_alert(),
                                 headers={**auth, "Idempotency-Key": f"demo-{seed}"}) as r:
                aid = (await r.json())["id"]
            console.print(f"Alert [bold]{aid}[/] posted: heat wave, Severe (needs an acknowledgement)")
            summary = await _watch(http, f"{settings.public_url}/v1/alerts/{aid}", auth, console)
            unreached = await _unreached(http, settings.public_url, aid, auth, redis, settings)
    finally:
        if worker is not None:
            service.stop_process(worker)
        service.stop_process(sim)
        await redis.aclose()
        if u.embedded:
            u.embedded.stop()
    seconds = round(time.monotonic() - started, 1)
    _summarise(summary, unreached, seconds, console)
    if as_json:
        print(orjson.dumps(_figures(summary, seconds)).decode(), flush=True)
    return 0 if summary["terminal"] == summary["targeted"] else 1


async def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer")
            await asyncio.sleep(0.1)


async def _watch(http, url: str, auth: dict, console: Console) -> dict:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console)
    task = progress.add_task("residents in a final state", total=None)
    deadline = time.monotonic() + DEADLINE_S
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            async with http.get(url, headers=auth) as r:
                summary = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"the gateway answered {r.status}: {summary}")
            progress.update(task, total=summary["targeted"] or None, completed=summary["terminal"])
            live.update(Group(progress, _channel_table(summary)))
            if summary["targeted"] and summary["terminal"] >= summary["targeted"] or time.monotonic() > deadline:
                return summary
            await asyncio.sleep(0.5)


def _channel_table(summary: dict) -> Table:
    table = Table(title="Per channel, live", title_justify="left")
    for col in ("channel", "sent", "delivered", "posted", "acknowledged", "failed", "confirmed by"):
        table.add_column(col, justify="right" if col != "channel" else "left")
    for channel in CHANNELS:
        c = summary["channels"].get(channel, {})
        sent = sum(v for k, v in c.items() if k in ("queued", "sent"))
        table.add_row(channel, str(sent), str(c.get("delivered", 0)), str(c.get("posted", 0)),
                      str(c.get("acknowledged", 0)), str(c.get("failed", 0)), str(c.get("confirmed_by", 0)))
    states = summary["deliveries"]
    table.caption = "  ".join(f"{s}: {n}" for s, n in states.items() if n) + f"   fallbacks: {summary['fallbacks']}"
    return table


async def _unreached(http, base: str, aid: str, auth: dict, redis, settings: Settings) -> list[dict]:
    """Who could not be reached, by name, and why."""
    from .crypto import Vault
    from .registry import Registry

    registry = Registry(redis, Vault.of(settings))
    async with http.get(f"{base}/v1/alerts/{aid}/deliveries?state=unreachable&limit=10", headers=auth) as r:
        rows = (await r.json())["deliveries"]
    out = []
    for row in rows:
        async with http.get(f"{base}/v1/alerts/{aid}/deliveries/{row['resident']}", headers=auth) as r:
            path = await r.json()
        person = await registry.get(row["resident"]) or {}
        why = "; ".join(f"{x.get('channel') or '-'}: {x['reason']}" for x in path.get("reasons", []))
        out.append({"resident": row["resident"], "name": person.get("name", ""), "why": why})
    return out


def _summarise(summary: dict, unreached: list[dict], seconds: float, console: Console) -> None:
    table = Table(title=f"Outcome after {seconds} s", title_justify="left")
    table.add_column("final state")
    table.add_column("residents", justify="right")
    for state in sorted(TERMINAL):
        table.add_row(state, str(summary["deliveries"][state]))
    table.add_row("[bold]targeted[/]", f"[bold]{summary['targeted']}[/]")
    console.print(table)
    by = Table(title="Confirmed through", title_justify="left")
    by.add_column("channel")
    by.add_column("residents", justify="right")
    for channel in CHANNELS:
        by.add_row(channel, str(summary["channels"].get(channel, {}).get("confirmed_by", 0)))
    console.print(by)
    if unreached:
        people = Table(title=f"Could not be reached ({summary['deliveries']['unreachable']}; first 10)",
                       title_justify="left")
        for col in ("resident", "name", "why"):
            people.add_column(col)
        for p in unreached:
            people.add_row(p["resident"], p["name"], p["why"])
        console.print(people)


def _figures(summary: dict, seconds: float) -> dict:
    return {
        "residents": summary["targeted"],
        "states": {s: summary["deliveries"][s] for s in sorted(TERMINAL)},
        "confirmed_by": {c: summary["channels"].get(c, {}).get("confirmed_by", 0) for c in CHANNELS},
        "fallbacks": summary["fallbacks"],
        "seconds": seconds,
    }
