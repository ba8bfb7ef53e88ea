"""A lean HTTP/1.1 client for provider APIs: keep-alive connections on
asyncio, responses parsed by httptools (llhttp, the parser Node.js uses).

Why not aiohttp for this one path: at fan-out rates the provider request is
the gateway's largest cost per message.  `bench/provider_client.py`
measures the client CPU per Twilio create on this machine: aiohttp about
135-150 us (aiosonic, pyreqwest and httpr were no cheaper, curl_cffi
dearer), this client about 55 us.  It does only what a provider's REST API
needs: one pool per origin, keep-alive, Content-Length or chunked bodies,
TLS through asyncio, a timeout per request.  No redirects, cookies, proxies,
streaming or HEAD; everything else in the gateway uses aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
import time
from urllib.parse import SplitResult, urlencode, urlsplit

import httptools


class HttpError(Exception):
    """The exchange failed on the wire; whether the server acted is unknown."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.open = True
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(HttpError(f"bad response: {e}"))
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.open = False
        self._fail(HttpError("connection closed before the response ended"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.open = False
            self.transport.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
        self.headers, self.body = [], []

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Origin:
    """Keep-alive connections to one scheme://host:port, at most `limit` at once."""

    def __init__(self, scheme: str, host: str, port: int, *, limit: int, idle_s: float,
                 ssl: ssl_module.SSLContext | None):
        self.key, self.host, self.port = (scheme, host, port), host, port
        self.ssl = (ssl or ssl_module.create_default_context()) if scheme == "https" else None
        self.host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        self.idle_s = idle_s
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(limit)

    async def exchange(self, head: bytes, body: bytes, timeout_s: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        # Waiting for a slot or a new connection is the rare case: only it pays for asyncio.timeout.
        if self._slots.locked():
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            conn = self._idle_connection()
            if conn is None:
                async with asyncio.timeout_at(deadline):
                    conn = await self._connect()
            conn.waiter = waiter = loop.create_future()
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                conn.transport.write(head + body)
                result = await waiter
            except BaseException:
                # Timed out or cancelled mid-exchange: the connection's state is unknown.
                conn.open = False
                conn.transport.close()
                raise
            finally:
                timer.cancel()
            if conn.open:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            return result
        finally:
            self._slots.release()

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recent: least likely to have been dropped by the server
            if conn.open and now - conn.idle_since < self.idle_s:
                return conn
            conn.transport.close()
        return None

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None)
        return conn

    def close(self) -> None:
        while self._idle:
            self._idle.pop().transport.close()


class Http1Client:
    """`request()` returns (status, headers, body); raises HttpError,
    OSError or TimeoutError when no response came."""

    def __init__(self, *, limit_per_origin: int = 256, idle_s: float = 15.0, ssl: ssl_module.SSLContext | None = None):
        self.limit, self.idle_s, self.ssl = limit_per_origin, idle_s, ssl
        # By (scheme, netloc) as the URL spells them.
        self._origins: dict[tuple[str, str], Origin] = {}

    async def request(self, method: str, url: str, *, params: dict | None = None, headers: dict[str, str] | None = None,
                      body: bytes = b"", timeout_s: float = 15.0) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if method == "HEAD":  # its answer has no body to read, which the parser cannot know
            raise ValueError("HEAD is not supported")
        parts = urlsplit(url)
        origin = self._origins.get((parts.scheme, parts.netloc))
        if origin is None:
            origin = self._origin(parts)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params, doseq=True) if params else "") if q)
        if query:
            target += "?" + query
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return await origin.exchange(head, body, timeout_s)

    def _origin(self, parts: SplitResult) -> Origin:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.geturl()}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        # One pool per origin, however its URLs spell the host.
        origin = next((o for o in self._origins.values() if o.key == key), None) or Origin(
            *key, limit=self.limit, idle_s=self.idle_s, ssl=self.ssl)
        self._origins[(parts.scheme, parts.netloc)] = origin
        return origin

    async def close(self) -> None:
        for origin in set(self._origins.values()):
            origin.close()
        self._origins.clear()
