"""The gateway deployed as a city runs it: every process on a host of its own.

Network namespaces on one LAN (tests/hosts.py): `data` (redis-server with AOF,
and RabbitMQ when it is the broker), `api` (`gateway api --no-pump`), `pump`,
`worker1`, `worker2`, `sim` (the provider simulator playing the city) and
`agency`, where this test posts from. Nothing shares a data folder: each host
has its own, and only the environment (keys included) is the same everywhere.

A heat-wave alert goes to a synthetic city of 10,000 residents. While it runs,
a third worker host joins and worker1's host dies (kill -9 of all it ran).
Every resident still ends in a terminal state; what worker1 had in flight is
the most that may reach a resident twice; and worker3 sends its share.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from gateway.store import connect
from simulator.city import generate
from tests.hosts import Lan, rabbitmq_server, unavailable

from stackkit import ACCOUNT_SID, AUTH_TOKEN, FROM, in_flight

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.multihost]

RESIDENTS = 10_000
API_PORT, SIM_PORT = 8080, 8900
# The city's delays (ringing, replies, taps) run 20x faster than life...
SIM_TIME_SCALE = 0.05
# ...and the step timeouts are short to match, with room for a loaded machine.
STEP_TIMEOUTS = {"push": 10, "sms": 15, "voice": 30}
SETTLE_S = 420
# Worker3 joins after this share of the first sends, worker1 dies after that one.
JOIN_AT, KILL_AT = 0.10, 0.30


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def gateway(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


def heat_wave() -> dict:
    return {
        "event": "Heat wave", "severity": "Severe", "urgency": "Immediate", "certainty": "Observed",
        "content": {
            "ko": {"headline": "폭염 경보", "body": "오늘 낮 최고기온이 38도까지 오릅니다. 한낮 야외 활동을 피하세요."},
            "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today. Avoid outdoor activity at midday."},
            "zh-CN": {"headline": "高温警报", "body": "今天最高气温将达38度。中午请避免户外活动。"},
            "vi": {"headline": "Cảnh báo nắng nóng", "body": "Nhiệt độ hôm nay lên tới 38 độ. Tránh ra ngoài vào buổi trưa."},
        },
        "audience": {"everyone": True},
        # No paper mail: a worker leaves its letters in a tray on its own disk, where the
        # API's batcher cannot see them (README, "Tested on separate hosts").
        "policy": {"channels": ["push", "sms", "voice"], "step_timeouts": STEP_TIMEOUTS},
    }


async def until(done, read, what: str, timeout: float = 180):
    """Reads until `done(value)`, then returns the value."""
    deadline = time.monotonic() + timeout
    while not done(value := await read()):
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout}s (last {value})"
        await asyncio.sleep(0.2)
    return value


def sent_twice(records: list[dict]) -> int:
    """Sends of an attempt the provider had already been handed. A Twilio
    request names its attempt in its status callback path (alert, resident,
    step, attempt, leg); a push has no such name, so a second push of the same
    text to a resident counts. An answering machine that hears each retry of a
    call is not counted: those are new attempts, by design."""
    attempts = Counter(urlsplit(r["status_callback"]).path for r in records
                       if r["channel"] in ("sms", "voice") and r.get("status_callback"))
    return (sum(n - 1 for n in attempts.values())
            + sum(1 for r in records if r["channel"] == "push" and r["duplicate"]))


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request) -> str:
    if reason := unavailable():
        pytest.skip(f"separate hosts need network namespaces: {reason}")
    if request.param == "rabbitmq" and rabbitmq_server() is None:
        pytest.skip("rabbitmq-server is not installed")
    return request.param


@pytest.mark.timeout(600)
async def test_an_alert_to_ten_thousand_residents_survives_a_worker_host_dying_and_uses_a_new_one(broker, tmp_path):
    with Lan(tmp_path) as lan:
        data, api, pump, sim, agency = (lan.host(n) for n in ("data", "api", "pump", "sim", "agency"))
        workers = [lan.host("worker1"), lan.host("worker2")]
        try:
            await _scenario(broker, lan, data, api, pump, sim, agency, workers, tmp_path)
        except BaseException:
            print(lan.logs())
            raise


async def _scenario(broker, lan, data, api, pump, sim, agency, workers, tmp_path: Path) -> None:
    redis_server = data.redis()
    redis_url = f"{redis_server}/0"
    broker_url = data.rabbitmq() if broker == "rabbitmq" else f"{redis_server}/1"
    sim_url, api_url = f"http://{sim.address}:{SIM_PORT}", f"http://{api.address}:{API_PORT}"
    # Web Push endpoints in the city point at the simulator's host.
    city = generate(RESIDENTS, 11, tmp_path / "city", sim_base_url=sim_url)
    rids = [orjson.loads(line)["id"] for line in city.residents.read_bytes().splitlines()]

    simulator = sim.start("simulator", [
        sys.executable, "-m", "simulator", "--host", sim.address, "--port", str(SIM_PORT),
        "--gateway-url", api_url, "--time-scale", str(SIM_TIME_SCALE), "--seed", "11",
        "--behaviour", str(city.behaviour), "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN,
        "--fcm-service-account", str(sim.dir / "fcm-service-account.json")])
    sim.wait_port(SIM_PORT, process=simulator)
    account = sim.dir / "fcm-service-account.json"
    # The simulator listens before it has written the account its FCM endpoints issue tokens for.
    deadline = time.monotonic() + 30
    while not account.exists():
        assert time.monotonic() < deadline and simulator.popen.poll() is None, simulator.tail()
        await asyncio.sleep(0.1)

    env = {
        "GATEWAY_REDIS_URL": redis_url, "GATEWAY_BROKER_URL": broker_url,
        "GATEWAY_HOST": api.address, "GATEWAY_PORT": str(API_PORT), "GATEWAY_PUBLIC_URL": api_url,
        # Each host keeps its own (empty) data folder: nothing may depend on a shared one.
        "GATEWAY_DATA_DIR": "var",
        "GATEWAY_CONTACT_KEY": key(), "GATEWAY_LOOKUP_KEY": key(), "GATEWAY_VAPID_PRIVATE_KEY": key(),
        "TWILIO_API_BASE": sim_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        # The FCM credentials are a file deployed to every host (here, a copy in each host's folder).
        "GATEWAY_FCM_SERVICE_ACCOUNT": "fcm-service-account.json", "GATEWAY_FCM_BASE": sim_url,
        "GATEWAY_WORKER_CONCURRENCY": "2", "GATEWAY_BATCH_SIZE": "100",
        "GATEWAY_BROKER_VISIBILITY_TIMEOUT_S": "20", "GATEWAY_VOICE_RETRY_BACKOFF_S": "5",
        # The simulated carriers have no rate limits to respect.
        "GATEWAY_SMS_RATE_PER_SENDER": "5000", "GATEWAY_SMS_RATE_PER_PROVIDER": "5000",
        "GATEWAY_VOICE_CPS_PER_SENDER": "1000", "GATEWAY_VOICE_CPS_PER_PROVIDER": "1000",
    }
    for host in (api, pump, *workers):
        shutil.copy(account, host.dir)

    server = api.start("api", gateway("api", "--no-pump"), env)
    api.wait_port(API_PORT, process=server)
    # A worker host set up with keys of its own would seal and read nothing the API can: it is refused.
    stray = workers[0].run(gateway("worker"), env={**os.environ, **env, "GATEWAY_CONTACT_KEY": key()},
                           capture_output=True, text=True, timeout=60)
    assert stray.returncode == 1 and "GATEWAY_CONTACT_KEY" in stray.stderr, stray.stderr
    pump.start("pump", gateway("pump"), env)
    for w in workers:
        w.start("worker", gateway("worker"), env)
    made = api.run(gateway("agency", "create", "Seoul Metropolitan Government", "--rate", "10000"),
                   env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    auth = {"Authorization": f"Bearer {made.stdout.split()[-1]}"}

    with agency.entered():
        redis = connect(redis_url)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            async with http.post(f"{api_url}/v1/residents/import", data=city.residents.read_bytes(),
                                 headers={**auth, "Content-Type": "application/x-ndjson"}) as r:
                assert r.status == 200, await r.text()
            started = time.monotonic()
            async with http.post(f"{api_url}/v1/alerts", json=heat_wave(), headers=auth) as r:
                assert r.status == 202, await r.text()
                aid = (await r.json())["id"]

            async def sent() -> int:
                async with http.get(f"{sim_url}/_sim/stats") as r:
                    stats = await r.json()
                return sum(sum(by_status.values()) for by_status in stats["records"].values())

            await until(lambda n: n >= RESIDENTS * JOIN_AT, sent, "worker3's cue")
            worker3 = lan.host("worker3")
            shutil.copy(account, worker3.dir)
            worker3.start("worker", gateway("worker"), env)

            sent_at_kill = await until(lambda n: n >= RESIDENTS * KILL_AT, sent, "worker1's end")
            workers[0].kill()
            at_kill = await in_flight(redis, aid, rids)

            async def progress() -> dict:
                async with http.get(f"{api_url}/v1/alerts/{aid}", headers=auth) as r:
                    return await r.json()

            summary = await until(lambda p: p["targeted"] and p["terminal"] == p["targeted"], progress,
                                  "every resident in a terminal state", SETTLE_S)
            seconds = time.monotonic() - started

            async with http.get(f"{sim_url}/_sim/stats") as r:
                stats = await r.json()
            async with http.get(f"{sim_url}/_sim/records", params={"limit": str(10 * RESIDENTS)}) as r:
                records = (await r.json())["records"]
        await redis.aclose()

    duplicates = sent_twice(records)
    heard_again = sum(stats["duplicates"].values())
    by_host = {h.name: stats["peers"].get(h.address, 0) for h in (*workers, lan.host("worker3"), api, pump)}
    figures = {"broker": broker, "residents": RESIDENTS, "targeted": summary["targeted"],
               "terminal": summary["terminal"], "states": summary["deliveries"], "sent_at_kill": sent_at_kill,
               "in_flight_at_kill": at_kill, "duplicates": duplicates,
               "heard_again_incl_machine_retries": heard_again, "provider_requests_by_host": by_host,
               "seconds": round(seconds, 1)}
    print("\nmultihost figures:", orjson.dumps(figures).decode())

    assert summary["targeted"] == RESIDENTS
    assert summary["terminal"] == RESIDENTS
    assert sum(summary["deliveries"].get(s, 0) for s in ("planned", "in_progress")) == 0
    # Only a send worker1 had claimed and not yet seen answered can be made twice.
    assert duplicates <= at_kill
    # The host added mid-alert did its share of the sending.
    assert by_host["worker3"] > 0
    # The surviving workers never crashed a task.
    for host in (workers[1], lan.host("worker3")):
        log = (host.dir / "worker.log").read_text(errors="replace")
        assert "raised unexpected" not in log, log[-3000:]
