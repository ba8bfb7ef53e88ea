"""A simulator on a free loopback port, a stand-in gateway, and Twilio clients.

The stand-in gateway records every webhook it gets (URL, signature, form) and
serves TwiML; the Twilio clients are the real `twilio` library, recording
every response they see so tests can check it against Twilio's spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp import web
from simkit import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    GatewayDouble,
    RecordingAsyncHttpClient,
    RecordingHttpClient,
)
from twilio.rest import Client

from simulator import SimConfig, Simulator, simulator_of, start


@pytest.fixture
async def gateway():
    double = GatewayDouble()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", double.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    double.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield double
    await runner.cleanup()


@pytest.fixture
def sim_config(gateway: GatewayDouble) -> SimConfig:
    return SimConfig(
        port=0, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, gateway_url=gateway.url,
        time_scale=0.01, seed=7, callback_backoff_s=1.0,
    )


@dataclass
class Running:
    sim: Simulator
    url: str


@pytest.fixture
async def sim(sim_config: SimConfig):
    runner, port = await start(sim_config)
    yield Running(simulator_of(runner), f"http://127.0.0.1:{port}")
    await runner.cleanup()


@pytest.fixture
def twilio_client(sim: Running) -> Client:
    """The real, synchronous twilio Client aimed at the simulator (call it in a thread)."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=RecordingHttpClient())
    client.api.base_url = sim.url
    return client


@pytest.fixture
async def async_twilio_client(sim: Running):
    http = RecordingAsyncHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = sim.url
    yield client
    await http.close()
