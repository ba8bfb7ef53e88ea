"""Web Push (RFC 8030) for residents subscribed in a browser instead of the app.

The payload is encrypted for the subscription with aes128gcm (RFC 8291) by
pywebpush's `WebPusher.encode`; the request is signed with VAPID (RFC 8292,
`GATEWAY_VAPID_PRIVATE_KEY`) and sent on aiohttp.  A 201 from the push
service means it took the message, not that a browser showed it: `sent`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from .base import Outcome
from .http import Session

NAME = "webpush"
TIMEOUT = aiohttp.ClientTimeout(total=15)
# A VAPID token may live 24 h; one is made per push service and reused for 12.
VAPID_LIFETIME_S = 12 * 3600
VAPID_RENEW_S = 3600


class WebPush:
    def __init__(self, settings, http: aiohttp.ClientSession | None = None):
        self.subject = settings.vapid_subject
        raw = settings.vapid_private_key
        self.vapid = Vapid02.from_raw(_b64(raw).encode()) if raw else None
        self.http = Session(http)
        self._signed: dict[str, tuple[str, float]] = {}

    def configured(self) -> bool:
        return self.vapid is not None

    async def send(self, subscription: dict[str, Any], payload: bytes, *, ttl: int, urgency: str = "high",
                   topic: str = "") -> Outcome:
        endpoint = subscription.get("endpoint", "")
        try:
            body = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError) as e:
            # Keys no browser could have made: this subscription can never work.
            return Outcome("failed", NAME, error_code="bad-subscription", detail=str(e)[:200], contact_dead=True)
        headers = {
            "Authorization": self._authorization(endpoint),
            "TTL": str(ttl),
            "Urgency": urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        if topic:
            # A newer message with the same topic replaces one still waiting on the service.
            headers["Topic"] = topic[:32]
        try:
            async with self.http.get().post(endpoint, data=body, headers=headers, timeout=TIMEOUT) as resp:
                detail = (await resp.text(errors="replace"))[:200]
                status, location = resp.status, resp.headers.get("Location", "")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as e:
            return Outcome("failed", NAME, error_code="network", permanent=False, detail=type(e).__name__)
        if status in (200, 201, 202):
            return Outcome("sent", NAME, ref=location.rsplit("/", 1)[-1])
        return failure(status, detail)

    def _authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        header, expires = self._signed.get(audience, ("", 0.0))
        now = time.time()
        if expires - now < VAPID_RENEW_S:
            expires = int(now) + VAPID_LIFETIME_S
            header = self.vapid.sign({"aud": audience, "sub": self.subject, "exp": expires})["Authorization"]
            self._signed[audience] = (header, expires)
        return header

    async def close(self) -> None:
        await self.http.close()


def failure(status: int, detail: str) -> Outcome:
    """404/410: the subscription is gone for good. 429/5xx: later. The rest is our fault."""
    dead = status in (404, 410)
    temporary = status == 429 or status >= 500
    return Outcome("failed", NAME, error_code=str(status), permanent=not temporary, detail=detail, contact_dead=dead)


def generate_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key for GATEWAY_VAPID_PRIVATE_KEY,
    public key for the browser's `applicationServerKey`), both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64(private), _b64(public)


def public_key(private_raw: bytes) -> str:
    """The applicationServerKey that goes with a raw private key."""
    key = ec.derive_private_key(int.from_bytes(private_raw, "big"), ec.SECP256R1())
    return _b64(key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
