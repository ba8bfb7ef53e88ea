"""The gateway as a city runs it, every part its own process on loopback, so a
fault can hit one part: a redis-server with AOF (fsync every second), the
Celery broker (a second redis-server or a RabbitMQ node), `gateway api
--no-pump`, `gateway pump`, `gateway worker`s and the provider simulator.

Used by bench/chaos.py, bench/chaos_storms.py and the tests/e2e/test_faults_*.py
and test_provider_storms.py tests:

    with ProcessStack(tmp) as s:
        s.kill("pump"); s.start("pump")       # kill -9, then a new one
        s.pause("redis"); s.resume("redis")   # SIGSTOP / SIGCONT: unreachable, not gone

    with ProcessStack(tmp, redis_apart=True) as s:
        s.data.link(up=False)                 # Redis's host off the network: connections hang

With `redis_apart`, redis-server runs on a host of its own and the rest on
another, joined by a LAN (tests/hosts.py: network namespaces, root needed);
the calling thread's sockets live on the second host while the stack runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson

from gateway.agencies import create_agency
from gateway.config import Settings
from hosts import Lan, rabbitmq_env, rabbitmq_server, redis_command
from stackkit import ACCOUNT_SID, AUTH_TOKEN, TIME_SCALE, free_ports, stack_env

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def clock_env(offset_s: int) -> dict[str, str]:
    """A process whose wall clock is `offset_s` off (libfaketime); its monotonic clock stays true."""
    if not offset_s:
        return {}
    if not Path(LIBFAKETIME).exists():
        raise RuntimeError("libfaketime is not installed (apt-get install faketime)")
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_NO_CACHE": "1"}


class ProcessStack:
    def __init__(self, root: Path, *, workers: int = 2, concurrency: int = 2, broker: str = "redis",
                 clock_offsets: dict[str, int] | None = None, redis_apart: bool = False,
                 env: dict[str, str] | None = None, code: Path | None = None):
        """clock_offsets: seconds a process's clock is off, by process name ("pump", "worker1");
        redis_apart: redis-server on a host of its own (`data`), the rest on `gateway`;
        env: settings of the gateway's processes beyond the tests' own (pacing, batch size);
        code: a checkout of another commit whose gateway and simulator run instead of this one."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.concurrency = concurrency
        self.broker_kind = broker
        self.clock_offsets = clock_offsets or {}
        self.api_port, self.sim_port, self.redis_port, self.broker_port, self.dist_port = free_ports(5)
        self.processes: dict[str, subprocess.Popen] = {}
        self.lan = self.data = self.gateway = None
        self._inside = contextlib.nullcontext()
        self.redis_address = "127.0.0.1"
        if redis_apart:
            self.lan = Lan(self.root / "hosts").__enter__()
            try:
                self.data, self.gateway = self.lan.host("data"), self.lan.host("gateway")
            except BaseException:
                self.lan.__exit__(None, None, None)
                raise
            self.redis_address = self.data.address
            self._inside = self.gateway.entered()
        self.redis_url = f"redis://{self.redis_address}:{self.redis_port}/0"
        self.broker_url = (f"redis://127.0.0.1:{self.broker_port}/0" if broker == "redis"
                           else f"amqp://guest:guest@127.0.0.1:{self.broker_port}//")
        self.settings = Settings.from_env(stack_env(self.root, self.api_port, self.sim_port,
                                                    GATEWAY_REDIS_URL=self.redis_url,
                                                    GATEWAY_BROKER_URL=self.broker_url, **(env or {})))
        # Ahead of the installed (editable) package on every process's path.
        self.code_env = {"PYTHONPATH": str(code)} if code else {}
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.sim = f"http://127.0.0.1:{self.sim_port}"

    def __enter__(self) -> "ProcessStack":
        self._inside.__enter__()
        try:
            for name in ("redis", "broker", "simulator", "api", "pump", *self.worker_names):
                self.start(name)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def worker_names(self) -> list[str]:
        return [f"worker{i}" for i in range(1, self.workers + 1)]

    def command(self, name: str) -> tuple[list[str], dict[str, str], int | None]:
        """(argv, extra environment, port to wait for) of the process called `name`."""
        gateway_env = {**self.settings.env(), **clock_env(self.clock_offsets.get(name, 0))}
        if name == "redis":
            return redis_command(self._dir("redis"), self.redis_port, self.redis_address), {}, self.redis_port
        if name == "broker" and self.broker_kind == "redis":
            return redis_command(self._dir("broker"), self.broker_port, "127.0.0.1"), {}, self.broker_port
        if name == "broker":
            node = f"chaos{os.getpid()}_{self.broker_port}@localhost"
            return ([rabbitmq_server()], rabbitmq_env(self._dir("broker"), node, self.broker_port, self.dist_port),
                    self.broker_port)
        if name == "simulator":
            return [sys.executable, "-m", "simulator", "--port", str(self.sim_port),
                    "--gateway-url", self.settings.public_url, "--time-scale", str(TIME_SCALE), "--seed", "11",
                    "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--callback-backoff-s", "0.2",
                    "--fcm-service-account", str(self.settings.fcm_service_account),
                    "--printhouse-dir", str(self.settings.printhouse)], {}, self.sim_port
        if name == "api":
            return [sys.executable, "-m", "gateway", "api", "--no-pump"], gateway_env, self.api_port
        if name == "pump":
            return [sys.executable, "-m", "gateway", "pump"], gateway_env, None
        if name.startswith("worker"):
            return ([sys.executable, "-m", "gateway", "worker", "--concurrency", str(self.concurrency)],
                    gateway_env, None)
        raise ValueError(f"no process called {name!r}")

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def start(self, name: str, timeout: float = 120) -> subprocess.Popen:
        args, env, port = self.command(name)
        if self.lan is not None:
            args = ["ip", "netns", "exec", (self.data if name == "redis" else self.gateway).ns, *args]
        with open(self.root / f"{name}.log", "ab") as log:
            # Its own process group: a kill reaches a worker's pool and RabbitMQ's Erlang VM too.
            popen = subprocess.Popen(args, env={**os.environ, **self.code_env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.root)
        self.processes[name] = popen
        if port is not None:
            self._wait_port(name, port, timeout)
        return popen

    def _wait_port(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        address = self.redis_address if name == "redis" else "127.0.0.1"
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection((address, port), timeout=1).close()
                return
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not listening on {port} after {timeout}s:\n{self.tail(name)}")
            time.sleep(0.1)

    def signal(self, name: str, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, sig)

    def kill(self, name: str) -> None:
        """kill -9 of the process and everything it started."""
        self.signal(name, signal.SIGKILL)
        self.processes[name].wait(10)

    def terminate(self, name: str, timeout: float = 60) -> None:
        """A clean stop (SIGTERM), kill -9 if it takes longer than `timeout`."""
        self.signal(name, signal.SIGTERM)
        try:
            self.processes[name].wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(name)

    def pause(self, name: str) -> None:
        self.signal(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)

    def stop(self) -> None:
        # Producers first, the stores last, so nothing is killed mid-write for nothing.
        if self.data is not None:
            self.data.link(up=True)
        for name in reversed(list(self.processes)):
            self.resume(name)
            self.terminate(name, timeout=20)
        self._inside.__exit__(None, None, None)
        if self.lan is not None:
            self.lan.__exit__(None, None, None)

    def tail(self, name: str, lines: int = 30) -> str:
        log = self.root / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def log_sizes(self) -> dict[str, int]:
        return {name: (self.root / f"{name}.log").stat().st_size for name in self.worker_names}

    def task_failures(self, since: dict[str, int]) -> list[str]:
        """Tasks that raised in a worker since `since` (log_sizes): the engine must never crash."""
        failures = []
        for name, offset in since.items():
            with open(self.root / f"{name}.log", "rb") as log:
                log.seek(offset)
                failures += [line.decode(errors="replace") for line in log if b"raised unexpected" in line]
        return failures

    async def forget(self, redis) -> None:
        """Another run on the same processes: the state Redis emptied and a new simulator
        (/_sim/reset would also stop its print house).  The broker is left alone: kombu
        keeps its queues' bindings there."""
        await redis.flushdb()
        self.terminate("simulator")
        self.start("simulator")

    async def simulator_records(self, http: aiohttp.ClientSession) -> list[dict]:
        async with http.get(f"{self.sim}/_sim/records", params={"limit": "10000000"}) as r:
            return (await r.json(loads=orjson.loads))["records"]

    async def simulator_stats(self, http: aiohttp.ClientSession) -> dict:
        async with http.get(f"{self.sim}/_sim/stats") as r:
            return await r.json(loads=orjson.loads)

    async def import_city(self, http: aiohttp.ClientSession, redis, residents: list[dict],
                          behaviours: list[dict]) -> dict[str, str]:
        """An agency, its residents imported through the API and the simulator taught
        how they behave; the agency's Authorization header."""
        _, key = await create_agency(redis, "Seoul Metropolitan Government", rate_per_s=100_000)
        auth = {"Authorization": f"Bearer {key}"}
        for start in range(0, len(residents), 5000):
            body = b"\n".join(orjson.dumps(r) for r in residents[start:start + 5000])
            async with http.post(f"{self.api}/v1/residents/import", data=body,
                                 headers={**auth, "Content-Type": "application/x-ndjson"}) as r:
                assert r.status == 200, await r.text()
        await self.teach_simulator(http, behaviours)
        return auth

    async def teach_simulator(self, http: aiohttp.ClientSession, behaviours: list[dict]) -> None:
        """How each resident behaves; a restarted simulator has forgotten it."""
        for start in range(0, len(behaviours), 2000):  # the simulator takes bodies up to 1 MB
            async with http.post(f"{self.sim}/_sim/behaviour", data=orjson.dumps(behaviours[start:start + 2000])) as r:
                assert r.status == 200, await r.text()
