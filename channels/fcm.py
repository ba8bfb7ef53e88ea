"""Firebase Cloud Messaging, HTTP v1 API, for the city's app.

Authenticates as a service account (`GATEWAY_FCM_SERVICE_ACCOUNT`, the JSON
file the Firebase console hands out) through google-auth: the signed JWT is
traded for a bearer token at the file's `token_uri`, in a thread, since
google-auth's transport is synchronous.  Sends go out on aiohttp.

FCM answers "accepted" at best: a 200 is `sent`, never `delivered`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from .base import Outcome
from .http import Session

log = logging.getLogger("channels.fcm")

NAME = "fcm"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
TIMEOUT = aiohttp.ClientTimeout(total=15)
# The token is gone: uninstalled app, expired or rotated token, other project.
DEAD_TOKEN_ERRORS = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
# Worth trying again later: FCM or a platform behind it is overloaded.
TEMPORARY_ERRORS = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}


class Fcm:
    def __init__(self, settings, http: aiohttp.ClientSession | None = None):
        self.account_file = settings.fcm_service_account
        self.base = settings.fcm_base
        self.http = Session(http)
        self._credentials: Any = None
        self._project = ""
        self._lock = asyncio.Lock()

    def configured(self) -> bool:
        return bool(self.account_file)

    async def send(self, message: dict[str, Any]) -> Outcome:
        """POST one `message` (the v1 `Message` object, with `token`)."""
        body = orjson.dumps({"message": message})
        try:
            bearer = await self._bearer()
            status, answer = await self._post(bearer, body)
            if status == 401:  # revoked or restarted token service: one fresh token, one more try
                status, answer = await self._post(await self._bearer(fresh=True), body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return Outcome("failed", NAME, error_code="network", permanent=False, detail=type(e).__name__)
        except AuthError as e:
            return Outcome("failed", NAME, error_code="auth", permanent=False, detail=str(e)[:200])
        if status == 200:
            return Outcome("sent", NAME, ref=str(answer.get("name", "")))
        return failure(status, answer)

    async def _post(self, bearer: str, body: bytes) -> tuple[int, dict]:
        url = f"{self.base}/v1/projects/{self._project}/messages:send"
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json; charset=UTF-8"}
        async with self.http.get().post(url, data=body, headers=headers, timeout=TIMEOUT) as resp:
            raw = await resp.read()
        try:
            answer = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            answer = {}
        return resp.status, answer if isinstance(answer, dict) else {}

    async def _bearer(self, fresh: bool = False) -> str:
        async with self._lock:
            creds = self._load()
            if fresh or not creds.valid:
                await asyncio.to_thread(_refresh, creds)
            return creds.token

    def _load(self):
        if self._credentials is None:
            from google.oauth2 import service_account

            try:
                creds = service_account.Credentials.from_service_account_file(self.account_file, scopes=[SCOPE])
            except (OSError, ValueError) as e:
                raise AuthError(f"service account {self.account_file}: {e}") from e
            self._credentials, self._project = creds, creds.project_id
        return self._credentials

    async def close(self) -> None:
        await self.http.close()


class AuthError(Exception):
    """No bearer token: the service account is unreadable or the token service said no."""


def _refresh(creds) -> None:
    import google.auth.exceptions
    from google.auth.transport.requests import Request

    try:
        creds.refresh(Request())
    except google.auth.exceptions.GoogleAuthError as e:
        raise AuthError(str(e)) from e


def failure(status: int, answer: dict) -> Outcome:
    """An FCM error answer as an outcome: which ones kill the token, which retry."""
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    code = next((d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict) and d.get("errorCode")),
                None) or error.get("status") or str(status)
    text = str(error.get("message", ""))[:200]
    dead = code in DEAD_TOKEN_ERRORS or (code == "INVALID_ARGUMENT" and "registration token" in text.lower())
    temporary = code in TEMPORARY_ERRORS or status == 429 or status >= 500 or status == 401
    return Outcome("failed", NAME, error_code=code, permanent=not temporary, detail=text, contact_dead=dead)
