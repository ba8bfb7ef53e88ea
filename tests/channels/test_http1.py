"""The provider HTTP client (channels/http1.py) against a real aiohttp server:
what a provider's API would make it face."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channels.http1 import Http1Client, HttpError


class Provider:
    """An aiohttp app that counts the TCP connections it was given."""

    def __init__(self, ssl_context=None):
        self.app = web.Application()
        self.peers: set = set()
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.ssl_context = ssl_context
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.behave = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername"))
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        if self.behave:
            return await self.behave(request, body)
        return web.json_response({"echo": body.decode(), "n": len(self.requests)}, status=201)

    async def __aenter__(self):
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def test_many_requests_share_a_few_kept_alive_connections():
    client = Http1Client(limit_per_origin=8)
    async with Provider() as provider:
        results = await asyncio.gather(*(
            client.request("POST", f"{provider.url}/Messages.json", body=f"To=%2B8210{i:04d}".encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
            for i in range(200)))
        await client.close()
    assert len(provider.requests) == 200
    assert len(provider.peers) <= 8
    bodies = sorted(r[2] for r in results)
    assert all(status == 201 for status, _, _ in results)
    assert b'"echo": "To=%2B82100000"' in bodies[0]
    assert {dict(h)[b"Content-Type"] for _, h, _ in results} == {b"application/json; charset=utf-8"}


async def test_query_parameters_and_headers_reach_the_provider():
    client = Http1Client()
    async with Provider() as provider:
        status, _, _ = await client.request("GET", f"{provider.url}/Calls.json?PageSize=2",
                                            params={"To": "+821012345678"}, headers={"X-Trace": "abc"})
        await client.close()
    method, path, headers, _ = provider.requests[0]
    assert status == 201 and method == "GET"
    assert path == "/Calls.json?PageSize=2&To=%2B821012345678"
    assert headers["X-Trace"] == "abc"
    assert headers["Host"].startswith("127.0.0.1:")


async def test_a_chunked_response_is_read_whole():
    async def chunked(request, body):
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"sid":', b'"SM1",', b'"status":"queued"}'):
            await response.write(part)
        await response.write_eof()
        return response

    client = Http1Client()
    async with Provider() as provider:
        provider.behave = chunked
        first = await client.request("GET", f"{provider.url}/a")
        second = await client.request("GET", f"{provider.url}/b")
        await client.close()
    assert first[2] == second[2] == b'{"sid":"SM1","status":"queued"}'
    assert len(provider.peers) == 1


async def test_a_provider_that_closes_after_each_answer_still_gets_every_request():
    async def closing(request, body):
        return web.Response(text="ok", headers={"Connection": "close"})

    client = Http1Client()
    async with Provider() as provider:
        provider.behave = closing
        for i in range(5):
            assert (await client.request("POST", f"{provider.url}/x", body=b"n=%d" % i))[2] == b"ok"
        await client.close()
    assert len(provider.requests) == 5
    assert len(provider.peers) == 5


def slow_on(word: bytes, seconds: float):
    """A provider that takes `seconds` to answer a request whose body is `word`, and echoes every body."""
    async def behave(request, body):
        await asyncio.sleep(seconds if body == word else 0)
        return web.Response(text=body.decode())
    return behave


async def test_a_silent_provider_times_out_and_its_connection_is_not_reused():
    client = Http1Client(limit_per_origin=1)
    async with Provider() as provider:
        provider.behave = slow_on(b"slow", 1)
        with pytest.raises(TimeoutError):
            await client.request("POST", f"{provider.url}/x", body=b"slow", timeout_s=0.2)
        status, _, body = await client.request("POST", f"{provider.url}/x", body=b"fast")
        await client.close()
    # The late answer to "slow" must never be read as the answer to "fast".
    assert (status, body) == (200, b"fast")
    assert len(provider.peers) == 2


async def test_a_request_waiting_for_a_busy_pool_times_out_and_frees_nothing_it_did_not_take():
    client = Http1Client(limit_per_origin=1)
    async with Provider() as provider:
        provider.behave = slow_on(b"slow", 0.6)
        busy = asyncio.create_task(client.request("POST", f"{provider.url}/x", body=b"slow"))
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):
            await client.request("POST", f"{provider.url}/x", body=b"queued", timeout_s=0.2)
        assert (await busy)[2] == b"slow"
        # The one connection is free again, and the timed-out request never reached the provider.
        assert (await client.request("POST", f"{provider.url}/x", body=b"after"))[2] == b"after"
        await client.close()
    assert [r[3] for r in provider.requests] == [b"slow", b"after"]


async def test_one_pool_per_origin_however_the_url_spells_the_host():
    client = Http1Client(limit_per_origin=4)
    async with Provider() as provider:
        port = provider.url.rsplit(":", 1)[1]
        for url in (provider.url, f"http://127.0.0.1:{port}", f"HTTP://127.0.0.1:{port}"):
            assert (await client.request("GET", f"{url}/x"))[0] == 201
        await client.close()
    # Three spellings, one kept-alive connection.
    assert len(provider.peers) == 1


async def test_a_connection_dropped_mid_answer_is_an_error_not_a_short_body():
    async def drop(request, body):
        request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        request.transport.close()
        await asyncio.sleep(0.1)
        return web.Response()

    client = Http1Client()
    async with Provider() as provider:
        provider.behave = drop
        with pytest.raises(HttpError):
            await client.request("GET", f"{provider.url}/x")
        await client.close()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    client = Http1Client()
    async with Provider() as provider:
        with pytest.raises(ValueError, match="line break"):
            await client.request("GET", f"{provider.url}/x", headers={"X-Evil": "a\r\nX-Injected: 1"})
        await client.close()
    assert provider.requests == []


async def test_requests_it_cannot_carry_are_refused_up_front():
    client = Http1Client()
    for method, url in (("HEAD", "http://127.0.0.1:9/x"), ("GET", "ftp://127.0.0.1/x"), ("GET", "/relative")):
        with pytest.raises(ValueError):
            await client.request(method, url)
    await client.close()


async def test_tls_to_the_provider(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async with Provider(server_ctx) as provider:
        client = Http1Client(ssl=trusted)
        status, _, body = await client.request("POST", f"{provider.url}/x", body=b"over tls")
        await client.close()
        untrusted = Http1Client()
        with pytest.raises(ssl.SSLError):
            await untrusted.request("GET", f"{provider.url}/x")
        await untrusted.close()
    assert status == 201 and b"over tls" in body
