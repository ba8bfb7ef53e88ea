"""App push as the gateway's push clients meet it: FCM HTTP v1 and Web Push.

FCM: the gateway's google-auth credentials trade a service-account JWT for a
bearer token at `POST /token` (the account comes from `make_service_account`,
whose `token_uri` points here), then `POST /v1/projects/{p}/messages:send`.
Web Push: `POST /wp/{id}` with VAPID (RFC 8292) and an aes128gcm payload
(RFC 8291), which is decrypted with the subscription's private key from the
city's behaviour file, as the resident's browser would.

Like the real services, both answer "accepted", never "delivered". A resident
whose behaviour says so taps the notification: after `ack_after_s` (scaled)
the simulated app POSTs `{"token": <ack>}` to `config.push_ack_url`, where
`<ack>` is `message.data.ack` (FCM) or the payload's `ack` (Web Push).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import http_ece
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from simulator import faults as fault_kinds
from simulator.behaviour import language_of, understands

if TYPE_CHECKING:
    from simulator.app import Simulator

log = logging.getLogger(__name__)

# google-auth always signs for Google's endpoint, whatever token_uri says; accept both.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPES = frozenset({
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
})
ACCESS_TOKEN_LIFETIME_S = 3600
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{8,4096}$")
DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
RESERVED_DATA = frozenset({"from", "notification", "message_type"})
# FCM and Web Push both cap a payload at 4 KiB.
MAX_PAYLOAD = 4096
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
VAPID_MAX_LIFETIME_S = 24 * 3600
ACK_TRIES = 3

_GRPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_FCM_ERROR_CODE = {400: "INVALID_ARGUMENT", 403: "SENDER_ID_MISMATCH", 404: "UNREGISTERED",
                   429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_FAULT_STATUS = {fault_kinds.OUTAGE: 503, fault_kinds.RATE_LIMITED: 429, fault_kinds.ERROR: 500}


def make_service_account(path: Path, token_uri: str, project_id: str = "sim-alerts") -> dict[str, str]:
    """Write a service-account JSON with a fresh RSA key, as the Firebase console hands one out."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com"
    account = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(account, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return account


def routes(sim: "Simulator") -> list[web.RouteDef]:
    """FCM and Web Push endpoints; the FCM service account is `config.fcm_service_account`, made if missing."""
    path = Path(sim.config.fcm_service_account)
    if path.exists():
        account = orjson.loads(path.read_bytes())
    else:
        host = "127.0.0.1" if sim.config.host in ("0.0.0.0", "::", "") else sim.config.host
        account = make_service_account(path, f"http://{host}:{sim.config.port}/token")
    fcm, webpush = _Fcm(sim, account), _WebPush(sim)
    return [
        web.post("/token", fcm.token),
        web.post("/v1/projects/{project}/messages:send", fcm.send),
        web.post("/wp/{id}", webpush.receive),
    ]


async def _fault(sim: "Simulator", request: web.Request, provider: str) -> int | None:
    """The HTTP status an injected fault answers with, or None to serve the request."""
    verdict = await sim.faults.admit(provider)
    if verdict in (fault_kinds.RESET, fault_kinds.HANG):
        await fault_kinds.drop(sim.faults, provider, verdict, request)
    return _FAULT_STATUS.get(verdict) if verdict else None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _language(payload: dict[str, Any], text: str) -> str | None:
    return payload.get("lang") or payload.get("language") or language_of(text)


def _deliver(sim: "Simulator", record: dict, provider: str, ref: str, to: str, payload: dict[str, Any],
             **extra: Any) -> dict[str, Any]:
    """Record what reached the resident's device: for push that is all the ground truth there is."""
    text = "\n".join(str(payload[k]) for k in ("title", "body") if payload.get(k))
    entry = sim.records.add(record["resident"] or to, "push", provider, ref, to=to, text=text,
                            language=_language(payload, text), status="delivered", payload=payload, **extra)
    sim.records.receive(entry)
    return entry


def _schedule_ack(sim: "Simulator", entry: dict[str, Any], record: dict, provider: str, token: Any) -> None:
    """The resident's app taps the notification later, if their behaviour says so and they can read it."""
    push = record["push"]
    if push["ack"] and isinstance(token, str) and token and understands(record, entry["language"]):
        sim.spawn(_tap(sim, entry, provider, token, sim.scaled(push["ack_after_s"])))


async def _tap(sim: "Simulator", entry: dict[str, Any], provider: str, token: str, delay: float) -> None:
    await asyncio.sleep(delay)
    entry["status"], entry["acknowledged_at"] = "acknowledged", time.time()
    fault = sim.faults.get(provider)
    if sim.faults.chance(fault.lost_callbacks):
        return
    if fault.callback_delay_s:
        await asyncio.sleep(fault.callback_delay_s)
    for _ in range(fault.duplicate_times if sim.faults.chance(fault.duplicate_callbacks) else 1):
        await _post_ack(sim, token)


async def _post_ack(sim: "Simulator", token: str) -> None:
    url = sim.config.push_ack_url
    for attempt in range(ACK_TRIES):
        try:
            async with sim.http.post(url, json={"token": token}) as resp:
                if resp.status < 500:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        # An app retries with back-off while the gateway is down.
        await asyncio.sleep(sim.scaled(2**attempt))
    log.warning("push acknowledgement to %s given up after %d tries", url, ACK_TRIES)


def _fcm_error(status: int, message: str) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": _GRPC_STATUS[status]}
    if status in _FCM_ERROR_CODE:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": _FCM_ERROR_CODE[status]}]
    headers = {"Retry-After": "10"} if status in (429, 503) else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return web.json_response({"error": error}, status=status, headers=headers, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _fcm_problem(body: Any) -> str | None:
    """Why FCM would reject this send request as INVALID_ARGUMENT, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return "Invalid JSON payload received. 'message' must be an object."
    unknown = set(body) - {"message", "validate_only"}
    if unknown:
        return f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}."
    message = body["message"]
    if "topic" in message or "condition" in message:
        return "The simulator delivers to registration tokens only."
    if not isinstance(message.get("token"), str) or not FCM_TOKEN.match(message["token"]):
        return "The registration token is not a valid FCM registration token"
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data': values must be strings."
    reserved = [k for k in data if k in RESERVED_DATA or k.startswith(("google", "gcm"))]
    if reserved:
        return f"Invalid data payload key: {reserved[0]}"
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or not all(isinstance(v, str) for v in notification.values()):
        return "Invalid value at 'message.notification'."
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "Invalid value at 'message.android'."
    if str(android.get("priority", "normal")).lower() not in ("normal", "high"):
        return f"Invalid value at 'message.android.priority' ({android['priority']!r})."
    if "ttl" in android and not (isinstance(android["ttl"], str) and DURATION.match(android["ttl"])):
        return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)."
    if len(orjson.dumps({"data": data, "notification": notification})) > MAX_PAYLOAD:
        return "Message is too big"
    return None


class _Fcm:
    def __init__(self, sim: "Simulator", account: dict[str, str]):
        self.sim, self.account = sim, account
        private = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
        self.public_key = private.public_key()
        self.audiences = [GOOGLE_TOKEN_AUDIENCE, account["token_uri"]]
        self.bearers: dict[str, float] = {}

    async def token(self, request: web.Request) -> web.Response:
        """OAuth 2.0 JWT bearer grant (RFC 7523), as oauth2.googleapis.com answers it."""
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")), self.public_key, algorithms=["RS256"], audience=self.audiences,
                issuer=self.account["client_email"], leeway=60, options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as e:
            return _oauth_error("invalid_grant", f"Invalid JWT: {e}")
        if claims["exp"] - claims["iat"] > ACCESS_TOKEN_LIFETIME_S:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes).")
        if not FCM_SCOPES & set(str(claims.get("scope", "")).split()):
            return _oauth_error("invalid_scope", "The scope does not allow Firebase Cloud Messaging.")
        now = time.time()
        self.bearers = {t: exp for t, exp in self.bearers.items() if exp > now}
        bearer = "ya29.sim-" + secrets.token_urlsafe(48)
        self.bearers[bearer] = now + ACCESS_TOKEN_LIFETIME_S
        return web.json_response(
            {"access_token": bearer, "expires_in": ACCESS_TOKEN_LIFETIME_S - 1, "token_type": "Bearer"}, dumps=_dumps
        )

    async def send(self, request: web.Request) -> web.Response:
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self.bearers.get(bearer, 0) < time.time():
            return _fcm_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.")
        project = request.match_info["project"]
        if project != self.account["project_id"]:
            return _fcm_error(403, f"Permission 'cloudmessaging.messages.create' denied on project {project}.")
        status = await _fault(self.sim, request, "fcm")
        if status:
            return _fcm_error(status, "The service is currently unavailable." if status >= 500 else "Quota exceeded.")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _fcm_error(400, "Invalid JSON payload received.")
        problem = _fcm_problem(body)
        if problem:
            return _fcm_error(400, problem)
        message = body["message"]
        name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        if body.get("validate_only"):
            return web.json_response({"name": name}, dumps=_dumps)
        token = message["token"]
        record = self.sim.behaviour.by_fcm(token)
        if record["push"]["token_state"] == "stale":
            self.sim.records.add(record["resident"] or token, "push", "fcm", name, to=token, status="failed",
                                 error="UNREGISTERED")
            return _fcm_error(404, "Requested entity was not found.")
        data = message.get("data", {})
        entry = _deliver(self.sim, record, "fcm", name, token, {**data, **message.get("notification", {})},
                         priority=str(message.get("android", {}).get("priority", "normal")).lower())
        _schedule_ack(self.sim, entry, record, "fcm", data.get("ack"))
        return web.json_response({"name": name}, dumps=_dumps)


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400, dumps=_dumps)


class _WebPush:
    def __init__(self, sim: "Simulator"):
        self.sim = sim

    async def receive(self, request: web.Request) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        endpoint = origin + request.path
        status = await _fault(self.sim, request, "webpush")
        if status:
            return _push_error(status, "push service unavailable" if status >= 500 else "too many requests")
        record = self.sim.behaviour.by_endpoint(endpoint)
        keys = record.get("webpush_keys", {}).get(endpoint)
        if keys is None:
            return _push_error(404, "no such subscription")
        refused = _vapid_problem(request.headers.get("Authorization", ""), origin)
        if refused:
            return _push_error(*refused)
        if record["push"]["token_state"] == "stale":
            self.sim.records.add(record["resident"] or endpoint, "push", "webpush", secrets.token_urlsafe(12),
                                 to=endpoint, status="failed", error="gone")
            return _push_error(410, "subscription expired")
        ttl, urgency = request.headers.get("TTL", ""), request.headers.get("Urgency", "normal")
        if not ttl.isdigit():
            return _push_error(400, "TTL header must be a non-negative integer")
        if urgency not in URGENCIES:
            return _push_error(400, f"Urgency must be one of {sorted(URGENCIES)}")
        body = await request.read()
        if len(body) > MAX_PAYLOAD:
            return _push_error(413, "payload too large")
        payload: dict[str, Any] = {}
        if body:
            if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
                return _push_error(400, "Content-Encoding must be aes128gcm")
            try:
                plain = _decrypt(body, keys)
            except (http_ece.ECEException, ValueError) as e:
                return _push_error(400, f"payload could not be decrypted: {e}")
            try:
                parsed = orjson.loads(plain)
            except orjson.JSONDecodeError:
                parsed = None
            payload = parsed if isinstance(parsed, dict) else {"body": plain.decode("utf-8", "replace")}
        ref = secrets.token_urlsafe(16)
        entry = _deliver(self.sim, record, "webpush", ref, endpoint, payload, ttl=int(ttl), urgency=urgency)
        _schedule_ack(self.sim, entry, record, "webpush", payload.get("ack"))
        return web.Response(status=201, headers={"Location": f"{origin}/wp/messages/{ref}", "TTL": ttl})


def _push_error(status: int, message: str) -> web.Response:
    headers = {"Retry-After": "10"} if status in (429, 503) else None
    return web.json_response({"code": status, "error": message}, status=status, headers=headers, dumps=_dumps)


def _vapid_problem(authorization: str, origin: str) -> tuple[int, str] | None:
    """Why VAPID (RFC 8292) fails: 401 when it is missing, 403 when it is wrong."""
    scheme, _, rest = authorization.partition(" ")
    params = dict(p.strip().partition("=")[::2] for p in rest.split(",") if "=" in p)
    if scheme.lower() != "vapid" or not params.get("t") or not params.get("k"):
        return 401, "VAPID authorization (vapid t=..., k=...) required"
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(params["k"]))
        claims = jwt.decode(params["t"], key, algorithms=["ES256"], audience=origin, leeway=60,
                            options={"require": ["exp", "aud"]})
    except (ValueError, jwt.InvalidTokenError) as e:
        return 403, f"invalid VAPID: {e}"
    if claims["exp"] > time.time() + VAPID_MAX_LIFETIME_S:
        return 403, "invalid VAPID: exp is more than 24 hours ahead"
    if "sub" in claims and not str(claims["sub"]).startswith(("mailto:", "https:")):
        return 403, "invalid VAPID: sub must be a mailto: or https: URI"
    return None


def _decrypt(body: bytes, keys: dict[str, str]) -> bytes:
    private = ec.derive_private_key(int.from_bytes(_b64url(keys["private_key"]), "big"), ec.SECP256R1())
    return http_ece.decrypt(body, private_key=private, auth_secret=_b64url(keys["auth"]), version="aes128gcm")
