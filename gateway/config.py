"""Settings as data, read once from the environment.

Every process (api, worker, pump, demo) builds one `Settings` from the same
variables, so a split deployment only has to share its environment.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"


def _decode_key(raw: str, name: str) -> bytes:
    key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    if len(key) != 32:
        raise ValueError(f"{name} must be 32 bytes, base64-encoded")
    return key


def _key(raw: str | None, data_dir: Path, name: str) -> bytes:
    """A 32-byte key from config, or one generated once and kept in the data dir."""
    if raw:
        return _decode_key(raw, name)
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


def _old_keys(raw: str) -> tuple[bytes, ...]:
    """Keys rotated out: still open what they sealed, never seal anything new."""
    return tuple(_decode_key(k.strip(), "GATEWAY_CONTACT_KEYS_OLD: each key") for k in raw.split(",") if k.strip())


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _networks(raw: str) -> tuple[str, ...]:
    networks = tuple(n.strip() for n in raw.split(",") if n.strip())
    for n in networks:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise ValueError(f"GATEWAY_CALLBACK_NETWORKS: {n!r} is not a network such as 10.20.0.0/16") from None
    return networks


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
    # One more process than cores: while one waits on Redis or the end of its
    # batch's provider calls, another uses the core (bench/fanout.py: +10-15%).
    worker_concurrency: int = (os.cpu_count() or 1) + 1
    batch_size: int = 200
    # On a Redis broker, a batch a dead worker had taken comes back after this
    # long (RabbitMQ gives it back as soon as the connection drops). Longer than
    # any batch takes (seconds), or a slow batch runs twice (harmless, but work).
    broker_visibility_timeout_s: int = 60
    # Provider calls in flight per worker process.
    inflight_per_worker: int = 64
    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 200_000_000
    # Seals contact data (gateway/crypto.py); older keys only open, until `gateway keys reseal`.
    contact_key: bytes = field(default=b"", repr=False)
    contact_keys_old: tuple[bytes, ...] = field(default=(), repr=False)
    lookup_key: bytes = field(default=b"", repr=False)
    # App push. FCM is off until a service-account JSON is given; Web Push
    # signs with this VAPID key (raw P-256 scalar; `gateway vapid generate`).
    fcm_service_account: str = ""
    fcm_base: str = "https://fcm.googleapis.com"
    vapid_private_key: bytes = field(default=b"", repr=False)
    vapid_subject: str = "mailto:alerts@localhost"
    # How long a push service keeps an undelivered notification when the alert has no expiry.
    push_ttl_s: int = 3600
    # Paper mail: the print house's drop box, a folder or sftp://user@host[:port]/path;
    # empty means no mail channel.
    printhouse: str = ""
    printhouse_ssh_key: str = ""
    printhouse_known_hosts: str = ""
    # Urgent letters wait at most this long for others to share their batch;
    # routine letters go at the daily cut-off (local time in mail_tz).
    mail_urgent_every_s: float = 300.0
    mail_cutoff: str = "16:00"
    mail_tz: str = "Asia/Seoul"
    # How often the print house's answers are looked for.
    mail_poll_s: float = 30.0
    mail_batch_max: int = 5000
    mail_return_address: str = ""

    # SMS providers in order of preference, each with its base share of the
    # traffic: "twilio=100,kannel=0" keeps Kannel on standby for failover.
    # Empty: every configured provider, the first with all the traffic.
    sms_providers: str = ""
    # Kannel's smsbox sendsms interface, the second SMS provider; empty: off.
    kannel_sendsms_url: str = ""
    kannel_username: str = ""
    kannel_password: str = field(default="", repr=False)
    kannel_from: str = ""
    # Sends through one smsc-id of that Kannel; empty: Kannel's own routing.
    kannel_smsc: str = ""
    # Pacing, shared by every worker: SMS per second per sender number and per
    # provider account; calls per second (CPS) likewise.
    sms_rate_per_sender: float = 30.0
    sms_rate_per_provider: float = 100.0
    voice_cps_per_sender: float = 5.0
    voice_cps_per_provider: float = 10.0
    # First wait before calling again after busy, no answer or a machine.
    voice_retry_backoff_s: float = 60.0
    # Private networks agencies' callback URLs may reach, as CIDRs ("10.20.0.0/16");
    # everything else non-public is refused (gateway/egress.py).
    callback_networks: tuple[str, ...] = ()
    # When set, /metrics answers only `Authorization: Bearer <token>` (Prometheus'
    # `authorization.credentials`); empty leaves it open, for a scraper on a private network.
    metrics_token: str = field(default="", repr=False)
    # A contact point neither confirmed by a delivery nor (re)registered for
    # this many days is stale (gateway/contact_ages.py).
    contact_stale_days: float = 365.0

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
            worker_concurrency=int(env.get("GATEWAY_WORKER_CONCURRENCY", (os.cpu_count() or 1) + 1)),
            batch_size=int(env.get("GATEWAY_BATCH_SIZE", "200")),
            broker_visibility_timeout_s=int(env.get("GATEWAY_BROKER_VISIBILITY_TIMEOUT_S", "60")),
            inflight_per_worker=int(env.get("GATEWAY_INFLIGHT", "64")),
            contact_key=_key(env.get("GATEWAY_CONTACT_KEY"), data_dir, "CONTACT_KEY"),
            contact_keys_old=_old_keys(env.get("GATEWAY_CONTACT_KEYS_OLD", "")),
            lookup_key=_key(env.get("GATEWAY_LOOKUP_KEY"), data_dir, "LOOKUP_KEY"),
            fcm_service_account=env.get("GATEWAY_FCM_SERVICE_ACCOUNT", ""),
            fcm_base=env.get("GATEWAY_FCM_BASE", "https://fcm.googleapis.com").rstrip("/"),
            # Any 32 random bytes below the P-256 order make a key, so the demo can make its own.
            vapid_private_key=_key(env.get("GATEWAY_VAPID_PRIVATE_KEY"), data_dir, "VAPID_PRIVATE_KEY"),
            vapid_subject=env.get("GATEWAY_VAPID_SUBJECT", "mailto:alerts@localhost"),
            push_ttl_s=int(env.get("GATEWAY_PUSH_TTL_S", "3600")),
            printhouse=env.get("GATEWAY_PRINTHOUSE", ""),
            printhouse_ssh_key=env.get("GATEWAY_PRINTHOUSE_SSH_KEY", ""),
            printhouse_known_hosts=env.get("GATEWAY_PRINTHOUSE_KNOWN_HOSTS", ""),
            mail_urgent_every_s=float(env.get("GATEWAY_MAIL_URGENT_EVERY_S", "300")),
            mail_cutoff=env.get("GATEWAY_MAIL_CUTOFF", "16:00"),
            mail_tz=env.get("GATEWAY_MAIL_TZ", "Asia/Seoul"),
            mail_poll_s=float(env.get("GATEWAY_MAIL_POLL_S", "30")),
            mail_batch_max=int(env.get("GATEWAY_MAIL_BATCH_MAX", "5000")),
            mail_return_address=env.get("GATEWAY_MAIL_RETURN_ADDRESS", ""),
            sms_providers=env.get("GATEWAY_SMS_PROVIDERS", ""),
            kannel_sendsms_url=env.get("KANNEL_SENDSMS_URL", ""),
            kannel_username=env.get("KANNEL_USERNAME", ""),
            kannel_password=env.get("KANNEL_PASSWORD", ""),
            kannel_from=env.get("KANNEL_FROM", ""),
            kannel_smsc=env.get("KANNEL_SMSC", ""),
            sms_rate_per_sender=float(env.get("GATEWAY_SMS_RATE_PER_SENDER", "30")),
            sms_rate_per_provider=float(env.get("GATEWAY_SMS_RATE_PER_PROVIDER", "100")),
            voice_cps_per_sender=float(env.get("GATEWAY_VOICE_CPS_PER_SENDER", "5")),
            voice_cps_per_provider=float(env.get("GATEWAY_VOICE_CPS_PER_PROVIDER", "10")),
            voice_retry_backoff_s=float(env.get("GATEWAY_VOICE_RETRY_BACKOFF_S", "60")),
            callback_networks=_networks(env.get("GATEWAY_CALLBACK_NETWORKS", "")),
            metrics_token=env.get("GATEWAY_METRICS_TOKEN", ""),
            contact_stale_days=float(env.get("GATEWAY_CONTACT_STALE_DAYS", "365")),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def env(self) -> dict[str, str]:
        """The environment that makes a child process build these same settings."""
        return {
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
            "GATEWAY_BROKER_VISIBILITY_TIMEOUT_S": str(self.broker_visibility_timeout_s),
            "GATEWAY_INFLIGHT": str(self.inflight_per_worker),
            "GATEWAY_CONTACT_KEY": _encode_key(self.contact_key),
            "GATEWAY_CONTACT_KEYS_OLD": ",".join(map(_encode_key, self.contact_keys_old)),
            "GATEWAY_LOOKUP_KEY": _encode_key(self.lookup_key),
            "GATEWAY_FCM_SERVICE_ACCOUNT": self.fcm_service_account,
            "GATEWAY_FCM_BASE": self.fcm_base,
            "GATEWAY_VAPID_PRIVATE_KEY": _encode_key(self.vapid_private_key),
            "GATEWAY_VAPID_SUBJECT": self.vapid_subject,
            "GATEWAY_PUSH_TTL_S": str(self.push_ttl_s),
            "GATEWAY_PRINTHOUSE": self.printhouse,
            "GATEWAY_PRINTHOUSE_SSH_KEY": self.printhouse_ssh_key,
            "GATEWAY_PRINTHOUSE_KNOWN_HOSTS": self.printhouse_known_hosts,
            "GATEWAY_MAIL_URGENT_EVERY_S": str(self.mail_urgent_every_s),
            "GATEWAY_MAIL_CUTOFF": self.mail_cutoff,
            "GATEWAY_MAIL_TZ": self.mail_tz,
            "GATEWAY_MAIL_POLL_S": str(self.mail_poll_s),
            "GATEWAY_MAIL_BATCH_MAX": str(self.mail_batch_max),
            "GATEWAY_MAIL_RETURN_ADDRESS": self.mail_return_address,
            "GATEWAY_SMS_PROVIDERS": self.sms_providers,
            "KANNEL_SENDSMS_URL": self.kannel_sendsms_url,
            "KANNEL_USERNAME": self.kannel_username,
            "KANNEL_PASSWORD": self.kannel_password,
            "KANNEL_FROM": self.kannel_from,
            "KANNEL_SMSC": self.kannel_smsc,
            "GATEWAY_SMS_RATE_PER_SENDER": str(self.sms_rate_per_sender),
            "GATEWAY_SMS_RATE_PER_PROVIDER": str(self.sms_rate_per_provider),
            "GATEWAY_VOICE_CPS_PER_SENDER": str(self.voice_cps_per_sender),
            "GATEWAY_VOICE_CPS_PER_PROVIDER": str(self.voice_cps_per_provider),
            "GATEWAY_VOICE_RETRY_BACKOFF_S": str(self.voice_retry_backoff_s),
            "GATEWAY_CALLBACK_NETWORKS": ",".join(self.callback_networks),
            "GATEWAY_METRICS_TOKEN": self.metrics_token,
            "GATEWAY_CONTACT_STALE_DAYS": str(self.contact_stale_days),
            # Empty reads as unset: the embedded Redis, and the state Redis as broker.
            "GATEWAY_REDIS_URL": self.redis_url or "",
            "GATEWAY_BROKER_URL": self.broker_url or "",
        }


def variables() -> frozenset[str]:
    """Every environment variable the gateway reads: the names `env()` writes,
    so docker/.env.example and the README's table are checked against one list."""
    return frozenset(Settings().env())
