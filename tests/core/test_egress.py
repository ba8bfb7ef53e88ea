"""An agency's callback URL reaches only public addresses and the private
networks the operator names: never the gateway's own Redis, a metadata
service or another host inside the city's network."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.config import Settings
from gateway.egress import Egress


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.7", "172.16.4.4", "192.168.1.1", "169.254.169.254",  # the cloud metadata service
    "100.64.0.1", "0.0.0.0", "224.0.0.251", "::1", "fe80::1%eth0", "fd00::5", "::ffff:127.0.0.1",
])
def test_a_callback_may_not_reach_a_private_or_special_address(address):
    assert not Egress().allows(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_a_callback_may_reach_a_public_address(address):
    assert Egress().allows(address)


def test_the_operator_names_the_private_networks_callbacks_may_reach():
    egress = Egress(Settings.from_env({"GATEWAY_CALLBACK_NETWORKS": "10.20.0.0/16, fd12::/16"}).callback_networks)
    assert egress.allows("10.20.3.4") and egress.allows("fd12::9")
    assert not egress.allows("10.21.0.1") and not egress.allows("127.0.0.1")
    with pytest.raises(ValueError, match="GATEWAY_CALLBACK_NETWORKS: 'intranet'"):
        Settings.from_env({"GATEWAY_CALLBACK_NETWORKS": "intranet"})


async def test_registering_tells_why_a_url_is_refused():
    egress = Egress()
    assert "10.0.0.7 is not a public address" in await egress.url_problem("http://10.0.0.7/hook")
    assert "::1 is not a public address" in await egress.url_problem("http://[::1]:8080/hook")
    assert (await egress.url_problem("https://localhost/hook")).startswith("localhost resolves to ")
    assert await egress.url_problem("https://no-such-host.invalid/hook") == "no-such-host.invalid does not resolve"
    assert await Egress(["127.0.0.0/8"]).url_problem("http://127.0.0.1:9/hook") is None


@pytest.fixture
async def receiver():
    hits = []

    async def take(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", take)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server.port, hits


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_post_to_a_refused_address_never_connects_whatever_name_led_there(receiver, host):
    """Checked at the socket: a name that resolved to a public address when it
    was registered and points inside later (DNS rebinding) still reaches nothing."""
    port, hits = receiver
    async with Egress().session(5) as http:
        with pytest.raises(aiohttp.ClientConnectorError, match="not a public address"):
            await http.post(f"http://{host}:{port}/hook", data=b"{}")
    assert hits == []
    async with Egress(["127.0.0.0/8", "::1/128"]).session(5) as http:
        async with http.post(f"http://{host}:{port}/hook", data=b"{}") as resp:
            assert resp.status == 204
    assert hits == [b"{}"]
