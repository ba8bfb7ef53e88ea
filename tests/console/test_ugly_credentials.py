"""A token, session cookie or form in bytes that are not text (a client's
encoding bug, or a probe) is refused like any wrong one, never answered with a crash."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from gateway.console.auth import COOKIE
from tests.console.town import sign_in


async def raw_get(port: int, path: str, header: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gateway\r\n" + header
                 + b"\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize("path", ["/v1/agency", "/metrics"])
async def test_a_token_that_is_not_text_gets_401(town, path):
    town.settings = town.settings.with_(metrics_token="scrape-" + "x" * 24)
    async with TestServer(town.app(), host="127.0.0.1") as server:
        for token in (b"Bearer gw_\xff\xfe_\xc3", b"Bearer \xe2\x82\xac"):
            answer = await raw_get(server.port, path, b"Authorization: " + token)
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
            assert b"application/problem+json" in answer


async def test_a_session_cookie_that_is_not_text_is_sent_to_sign_in(town):
    async with TestServer(town.app(), host="127.0.0.1") as server:
        answer = await raw_get(server.port, "/ops/alerts", b"Cookie: gw_ops=\xff\xfe")
        assert answer.startswith(b"HTTP/1.1 303 ") and b"Location: /ops/login" in answer, answer[:200]


async def raw_post(port: int, path: str, headers: bytes, body: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n" + headers + b"\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_form_whose_bytes_are_not_text_is_refused_like_an_expired_one(town, client):
    """Browsers post UTF-8; anything else (a probe, a broken client) meets the CSRF check, not a crash."""
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    cookie = f"Cookie: {COOKIE}={next(c.value for c in client.session.cookie_jar if c.key == COOKIE)}"
    async with TestServer(town.app(), host="127.0.0.1") as server:
        for path in ("/ops/login", "/ops/alerts/al_x/cancel"):
            answer = await raw_post(server.port, path, cookie.encode(), b"csrf=\xff\xfe&name=\xff")
            assert answer.startswith(b"HTTP/1.1 403 ") and b"Form expired" in answer, answer[:300]
