"""What the tests on the whole stack (tests/api, tests/e2e) and bench/chaos.py
share: the gateway's settings against the simulator, starting and stopping it,
the simulator's Twilio account, free ports, how many sends are in flight, sample
residents and alerts with fast steps, and one agency API call. A module of its
own, because `from conftest import ...` finds whichever conftest pytest
imported last (tests/simulator has one too)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import orjson

from gateway import keys, samples, service, tasks
from gateway.config import Settings

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f"
FROM = "+15005550006"

TIME_SCALE = 0.01


@dataclass
class Stack:
    settings: Settings
    urls: service.Urls
    sim_port: int
    worker: object

    def restart_worker(self, concurrency: int = 2):
        log = open(self.worker_log, "ab")
        self.worker = service.spawn_worker(self.settings, self.urls, concurrency, stdout=log, stderr=log)
        log.close()
        return self.worker

    @property
    def worker_log(self) -> Path:
        return self.settings.data_dir / "worker.log"

    def task_failures_since(self, offset: int) -> list[str]:
        """Tasks that raised in the worker: the engine must never crash, even
        when timers would carry the residents on regardless."""
        with open(self.worker_log, "rb") as f:
            f.seek(offset)
            return [line.decode(errors="replace") for line in f if b"raised unexpected" in line]

    def log_size(self) -> int:
        return self.worker_log.stat().st_size if self.worker_log.exists() else 0


def start_stack(data, **env: str) -> Stack:
    """A gateway (settings, embedded Redis, a worker process) in `data`; `env`
    adds settings, so a test module can run a stack of its own (a second SMS
    provider, short retry back-off) without changing everyone else's."""
    api_port, sim_port = free_port(), free_port()
    settings = Settings.from_env(stack_env(data, api_port, sim_port, **env))
    urls = service.urls(settings)
    s = Stack(settings, urls, sim_port, None)
    s.restart_worker()
    forget_broker()
    return s


def forget_broker() -> None:
    """The next API server must open its own stack's broker."""
    tasks.forget_broker()


def stop_stack(s: Stack) -> None:
    service.stop_process(s.worker)
    if s.urls.embedded:
        s.urls.embedded.stop()
    forget_broker()


def stack_env(data: Path, api_port: int, sim_port: int, **env: str) -> dict[str, str]:
    """The gateway's settings for a stack in `data` whose providers are the simulator on `sim_port`."""
    return {
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_PORT": str(api_port),
        "TWILIO_API_BASE": f"http://127.0.0.1:{sim_port}",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM,
        "GATEWAY_BATCH_SIZE": "100",
        # App push against the simulator: it writes this service account on first start.
        "GATEWAY_FCM_SERVICE_ACCOUNT": str(data / "fcm-service-account.json"),
        "GATEWAY_FCM_BASE": f"http://127.0.0.1:{sim_port}",
        # Paper mail through the simulated print house's drop box; urgent batches close after 2 s.
        "GATEWAY_PRINTHOUSE": str(data / "printhouse"),
        "GATEWAY_MAIL_URGENT_EVERY_S": "2",
        "GATEWAY_MAIL_POLL_S": "0.2",
        # The simulator has no carrier limits; tests about pacing set their own.
        "GATEWAY_SMS_RATE_PER_SENDER": "5000",
        "GATEWAY_SMS_RATE_PER_PROVIDER": "5000",
        "GATEWAY_VOICE_CPS_PER_SENDER": "1000",
        "GATEWAY_VOICE_CPS_PER_PROVIDER": "1000",
        # The agency callback receivers in these tests listen on loopback.
        "GATEWAY_CALLBACK_NETWORKS": "127.0.0.0/8",
        **env,
    }


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different free ports: each socket stays bound until all are picked."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def in_flight(redis, aid: str, rids: list[str]) -> int:
    """Sends claimed whose provider answer was never recorded."""
    count = 0
    for start in range(0, len(rids), 1000):
        pipe = redis.pipeline(transaction=False)
        for rid in rids[start:start + 1000]:
            pipe.hmget(keys.delivery(aid, rid), "c", "b")
        for claimed, best in await pipe.execute():
            if claimed is not None and best in (None, b"0"):
                count += 1
    return count


def sms_residents(count: int, prefix: str, number_prefix: str) -> tuple[list[dict], list[dict]]:
    """Feature-phone residents of district 11110 whose texts are delivered, and the
    simulator's behaviour for them: (residents, behaviours) for `City.import_ndjson`."""
    residents, behaviours = [], []
    for i in range(count):
        rid, number = f"{prefix}{i:05d}", f"{number_prefix}{i:06d}"
        residents.append(samples.resident(rid, samples.phone(number)))
        behaviours.append({"resident": rid, "phones": [number], "sms": {"outcome": "delivered"}})
    return residents, behaviours


# Delivered closes a delivery: one text each, so a second one is a duplicate.
SMS_FLOOD = samples.flood({"districts": [samples.DISTRICT]},
                          policy={"channels": ["sms"], "confirmation": "delivered", "step_timeouts": {"sms": 240}})


# Steps short enough for a test's patience (seconds).
FAST = {"sms": 2, "voice": 4, "push": 2, "mail": 2}


def heat_wave(audience: dict, severity: str = "Moderate", **fields) -> dict:
    """The sample heat wave with fast steps; `fields` replace top-level fields (a whole `policy` too)."""
    return samples.heat_wave(audience, severity=severity, policy={"step_timeouts": FAST}) | fields


async def call(city, method, path, *, key=None, **kw):
    """(status, content type, JSON body or None) of one agency API request, with the city's key or `key`."""
    headers = {"Authorization": f"Bearer {key or city.key}", **kw.pop("headers", {})}
    async with city.http.request(method, f"{city.api}{path}", headers=headers, **kw) as r:
        body = await r.read()
        return r.status, r.headers.get("Content-Type", ""), (orjson.loads(body) if body else None)
