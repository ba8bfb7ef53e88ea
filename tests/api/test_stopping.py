"""The API's background loops stop when the gateway stops, even when a
cancel is lost on the way.

On Python 3.11, `asyncio.wait_for` (which redis-py calls around every write
when a socket timeout is set) drops a task's cancel if the awaited reply
lands in the same tick (CPython gh-86296). A loop that stops only when
cancelled then runs on, and the gateway never finishes stopping: `gateway
run` hangs on SIGTERM. These loops are told to stop, then cancelled.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.api import audience
from gateway.api.http import STATE
from gateway.callbacks import Courier
from gateway.egress import Egress
from gateway.geo import ResidentIndex

STOP_WITHIN_S = 3.0


async def losing_the_cancel(*_) -> bool:
    """A Redis round trip whose reply arrived in the same tick as the cancel."""
    try:
        await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        pass
    return True


async def stops_within(coro, seconds: float = STOP_WITHIN_S) -> bool:
    done, _ = await asyncio.wait([asyncio.ensure_future(coro)], timeout=seconds)
    return bool(done)


async def test_the_api_stops_while_its_resident_index_refreshes_even_if_the_cancel_is_lost(redis, monkeypatch):
    monkeypatch.setattr(ResidentIndex, "snapshot", losing_the_cancel)
    app = web.Application()
    app[STATE] = {"redis": redis}
    await audience.warm_index(app)
    await asyncio.sleep(0.01)  # inside a refresh
    assert await stops_within(audience.stop_index(app))
    assert app[STATE]["resident_index_warm"].done()


async def test_the_pump_stops_while_it_sends_agency_callbacks_even_if_the_cancel_is_lost(redis, monkeypatch):
    monkeypatch.setattr(Courier, "_send_batch", losing_the_cancel)  # and there is always more to send
    courier = Courier(redis, Egress())
    courier._sending["a1"] = asyncio.create_task(courier._drain("a1", "a1"))
    await asyncio.sleep(0.01)
    assert await stops_within(courier.close())
    assert not courier._sending
