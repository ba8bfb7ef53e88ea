"""Settings as data, read once from the environment.

Every process (api, worker, pump, demo) builds one `Settings` from the same
variables, so a split deployment only has to share its environment.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"


def _key(raw: str | None, data_dir: Path, name: str) -> bytes:
    """A 32-byte key from config, or one generated once and kept in the data dir."""
    if raw:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        if len(key) != 32:
            raise ValueError(f"{name} must be 32 bytes, base64-encoded")
        return key
    path = data_dir / f"{name.lower()}.key"
    if path.exists():
        return base64.urlsafe_b64decode(path.read_bytes().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    # Written with O_EXCL so two processes starting together agree on one key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return base64.urlsafe_b64decode(path.read_bytes().strip())
    with os.fdopen(fd, "wb") as f:
        f.write(base64.urlsafe_b64encode(key))
    return key


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    # None means: start (or join) the embedded Redis under data_dir.
    redis_url: str | None = None
    # None means: use the state Redis as the Celery broker (another db number).
    broker_url: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    worker_concurrency: int = 2
    batch_size: int = 200
    # Provider calls in flight per worker process.
    inflight_per_worker: int = 64
    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 200_000_000
    contact_key: bytes = field(default=b"", repr=False)
    lookup_key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("GATEWAY_DATA_DIR", "var")).resolve()
        host = env.get("GATEWAY_HOST", "127.0.0.1")
        port = int(env.get("GATEWAY_PORT", "8080"))
        return cls(
            data_dir=data_dir,
            redis_url=env.get("GATEWAY_REDIS_URL") or None,
            broker_url=env.get("GATEWAY_BROKER_URL") or None,
            public_url=env.get("GATEWAY_PUBLIC_URL", f"http://{host}:{port}").rstrip("/"),
            api_host=host,
            api_port=port,
            twilio_api_base=env.get("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/"),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            twilio_from_number=env.get("TWILIO_FROM_NUMBER", ""),
            worker_concurrency=int(env.get("GATEWAY_WORKER_CONCURRENCY", "2")),
            batch_size=int(env.get("GATEWAY_BATCH_SIZE", "200")),
            inflight_per_worker=int(env.get("GATEWAY_INFLIGHT", "64")),
            contact_key=_key(env.get("GATEWAY_CONTACT_KEY"), data_dir, "CONTACT_KEY"),
            lookup_key=_key(env.get("GATEWAY_LOOKUP_KEY"), data_dir, "LOOKUP_KEY"),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def env(self) -> dict[str, str]:
        """The environment that makes a child process build these same settings."""
        out = {
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_PUBLIC_URL": self.public_url,
            "GATEWAY_HOST": self.api_host,
            "GATEWAY_PORT": str(self.api_port),
            "TWILIO_API_BASE": self.twilio_api_base,
            "TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "TWILIO_FROM_NUMBER": self.twilio_from_number,
            "GATEWAY_WORKER_CONCURRENCY": str(self.worker_concurrency),
            "GATEWAY_BATCH_SIZE": str(self.batch_size),
            "GATEWAY_INFLIGHT": str(self.inflight_per_worker),
            "GATEWAY_CONTACT_KEY": base64.urlsafe_b64encode(self.contact_key).decode(),
            "GATEWAY_LOOKUP_KEY": base64.urlsafe_b64encode(self.lookup_key).decode(),
        }
        if self.redis_url:
            out["GATEWAY_REDIS_URL"] = self.redis_url
        if self.broker_url:
            out["GATEWAY_BROKER_URL"] = self.broker_url
        return out
