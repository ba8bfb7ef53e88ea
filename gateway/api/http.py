"""What every API handler needs: the app state, JSON in and out, the calling agency."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..agencies import Agency, authenticate
from ..problems import Problem

STATE = web.AppKey("state", dict)


def json_response(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def bearer(request: web.Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None. Bytes that are not
    ASCII arrive as surrogates no digest or Redis key takes: "" then, a token nobody holds."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    token = header[7:].strip()
    return token if token.isascii() else ""


async def require(request: web.Request, scope: str) -> Agency:
    token = bearer(request)
    if token is None:
        raise Problem(401, "Unauthorized", "Send `Authorization: Bearer <API key>`.",
                      headers={"WWW-Authenticate": "Bearer"})
    state = request.app[STATE]
    known = await authenticate(state["redis"], token)
    if known is None:
        raise Problem(401, "Unauthorized", "Unknown API key.", headers={"WWW-Authenticate": "Bearer"})
    agency, requests_this_second = known
    if scope not in agency.scopes:
        raise Problem(403, "Forbidden", f"This key lacks the scope {scope}.")
    if requests_this_second > agency.rate_per_s:
        raise Problem(429, "Too many requests", f"The limit is {agency.rate_per_s} requests a second.",
                      headers={"Retry-After": "1"})
    return agency


async def json_body(request: web.Request) -> object:
    limit = request.app[STATE]["settings"].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "Body too large", f"The limit is {limit} bytes.")
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported media type", "Send application/json.",
                      errors=[{"field": "Content-Type", "detail": f"{request.content_type} is not accepted"}])
    raw = await request.read()
    if len(raw) > limit:
        raise Problem(413, "Body too large", f"The limit is {limit} bytes.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Problem(400, "Body is not JSON", str(e)) from None


