"""Live progress: server-sent events carrying each watched alert's summary and
the delivery engine's health (gateway/engine_health.py) every second.

The pages work without it (a plain refresh link); gateway/static/console.js
writes each summary into the elements marked `data-alert`/`data-field`, and
the engine's health into its line.  While Redis does not answer, the stream
goes on with the engine's health alone: that is when it matters.
"""

from __future__ import annotations

import asyncio
import re
import time

import orjson
from aiohttp import web

from .. import engine_health
from ..alerts import Alerts
from ..api.http import STATE
from ..store import STORE_DOWN
from .auth import COOKIE, load_session, page

STOP = web.AppKey("ops_live_stop", asyncio.Event)
INTERVAL_S = 1.0
MAX_ALERTS = 50
# The browser reconnects by itself; a stream is not held open for ever.
MAX_STREAM_S = 600
ALERT_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@page("viewer", touch=False)
async def live_progress(request: web.Request) -> web.StreamResponse:
    """`?alert=<id>` repeated: an `event: summary` per alert, every second."""
    ids = [a for a in request.query.getall("alert", []) if ALERT_ID.match(a)][:MAX_ALERTS]
    state = request.app[STATE]
    redis, stop = state["redis"], request.app[STOP]
    store = Alerts(redis)
    ids = [aid for aid in ids if await store.get(aid) is not None]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    deadline = time.monotonic() + MAX_STREAM_S
    try:
        await response.write(b"retry: 2000\n\n")
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                # A session ended or an operator disabled meanwhile ends the stream too.
                if await load_session(redis, request.cookies.get(COOKIE), touch=False) is None:
                    break
                for aid in ids:
                    await response.write(b"event: summary\ndata: " + orjson.dumps(await store.summary(aid)) + b"\n\n")
            except STORE_DOWN:
                pass  # Redis is the fault: the engine's line says so; the summaries come back with it
            health = await engine_health.read(redis)
            await response.write(b"event: engine\ndata: " + orjson.dumps(health.as_dict()) + b"\n\n")
            try:
                await asyncio.wait_for(stop.wait(), INTERVAL_S)
            except asyncio.TimeoutError:
                pass
    except ConnectionResetError:  # the page was closed
        pass
    return response


async def stop_streams(app: web.Application) -> None:
    """On shutdown: end the streams at once rather than wait for them."""
    app[STOP].set()
