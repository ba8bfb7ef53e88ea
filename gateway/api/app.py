"""The aiohttp application: agency API, provider webhooks, health.

Every error leaves as RFC 9457 problem+json; nothing is written before a
request is checked.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .. import console, metrics, resident_pages
from ..console import reach
from ..egress import Egress
from ..engine import UnknownAlert
from ..problems import Problem
from ..store import STORE_DOWN
from . import agency_callbacks, alerts, audience, cap, openapi, preview, residents
from .http import STATE, json_response
from ..schemas import record
from .routing import Route, returns

log = logging.getLogger("gateway.api")


@web.middleware
async def problems(request: web.Request, handler):
    try:
        return await handler(request)
    except Problem as p:
        return p.response()
    except STORE_DOWN:
        log.warning("Redis not answering on %s %s", request.method, request.path, exc_info=True)
        if request.path.startswith("/ops"):
            return await console.views.store_outage(request)
        return Problem(503, "Service unavailable", "The gateway's state store (Redis) is not answering; "
                       "nothing was changed. Try again shortly.", headers={"Retry-After": "5"}).response()
    except UnknownAlert:
        # Only a provider webhook reaches the engine with a URL's alert id; signed or not, none such exists.
        return Problem(404, "Not found", "No such alert.").response()
    except web.HTTPRequestEntityTooLarge:
        return Problem(413, "Body too large", f"The limit is {request.app[STATE]['settings'].max_body_bytes} bytes."
                       ).response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return Problem(e.status, e.reason, e.text if e.text and e.text != f"{e.status}: {e.reason}" else "",
                       headers={k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}).response()
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(500, "Internal error", "The request was not completed; nothing was changed.").response()


async def healthz(request: web.Request) -> web.Response:
    await request.app[STATE]["redis"].ping()
    return json_response({"status": "ok"})


BASE_ROUTES = [
    Route("GET", "/healthz", healthz, "Liveness and Redis reachability", tag="ops",
          responses={200: returns("Redis answers", record({"status": {"enum": ["ok"]}}))}),
]


def routes() -> list[Route]:
    # cap before alerts: GET /v1/alerts/{aid}.cap would otherwise match /v1/alerts/{aid}.
    return BASE_ROUTES + residents.ROUTES + preview.ROUTES + cap.ROUTES + alerts.ROUTES + audience.ROUTES \
        + agency_callbacks.ROUTES + reach.ROUTES + console.ROUTES + resident_pages.ROUTES + metrics.ROUTES + [
        Route("GET", "/v1/openapi.json", openapi.serve, "This OpenAPI 3.1 document", tag="meta",
              responses={200: returns("OpenAPI 3.1", {"type": "object", "required": ["openapi", "paths"]})})]


def make_app(settings, redis, engine, dispatch) -> web.Application:
    app = web.Application(middlewares=[problems], client_max_size=settings.max_import_bytes)
    app[STATE] = {"settings": settings, "redis": redis, "engine": engine, "dispatch": dispatch,
                  "channel_context": engine.context, "egress": Egress(settings.callback_networks)}
    table = routes()
    for r in table:
        app.router.add_route(r.method, r.path, r.handler)
    webhooks = []
    for channel in engine.channels.values():
        for rd in channel.routes():
            app.router.add_route(rd.method, rd.path, rd.handler)
            webhooks.append((rd.method, rd.path, channel.name, rd.handler))
    app[STATE]["spec"] = openapi.build(table, webhooks, settings.public_url)
    app.on_startup.append(audience.warm_index)
    app.on_cleanup.append(audience.stop_index)
    console.mount(app)
    return app
