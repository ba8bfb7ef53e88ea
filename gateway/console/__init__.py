"""The operator console at /ops: live alerts, who was not reached and why,
actions on alerts, provider health, reach, operators and their audit log."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..api.routing import Route, returns
from . import admin, sse, views
from .html import HTML_PAGE, form_body, static_file

TAG = "operator console"
CSRF = {"csrf": "The form's CSRF token"}
PAGE = {200: HTML_PAGE, 303: "To /ops/login without a session"}
ACTION = {303: "Back to the page, which says what happened; to /ops/login without a session",
          403: "Role too low, or the CSRF token is wrong"}

ROUTES = [
    Route("GET", "/ops", views.console_home, "The console: goes to the alerts", tag=TAG,
          responses={303: "To /ops/alerts"}),
    Route("GET", "/ops/login", views.sign_in_form, "Sign-in form", tag=TAG, responses={200: HTML_PAGE},
          query={"next": ("Console page to return to", {"type": "string"})}),
    Route("POST", "/ops/login", views.sign_in, "Sign in; starts a fresh session", tag=TAG,
          body=form_body({**CSRF, "name": "Operator name", "password": "Password", "next": "Console page to return to"},
                         ("csrf", "name", "password")),
          responses={303: "Signed in", 401: "Wrong name or password", 403: "Form expired"}),
    Route("POST", "/ops/logout", views.sign_out, "Sign out", tag=TAG, body=form_body(CSRF, ("csrf",)),
          responses={303: "To /ops/login"}),
    Route("GET", "/ops/alerts", views.alerts_page, "Latest alerts with live progress", tag=TAG, responses=PAGE),
    Route("GET", "/ops/live", sse.live_progress, "Server-sent events: each alert's summary every second", tag=TAG,
          query={"alert": ("Alert id; repeat for more", {"type": "string"})},
          responses={200: returns("`summary` events", {"type": "string"}, "text/event-stream"), 303: PAGE[303]}),
    Route("GET", "/ops/alerts/{aid}", views.alert_page,
          "One alert: flow through the channels, time to confirmation, outcomes, who is unreached", tag=TAG,
          query={"page": ("Page of the unreached list", {"type": "integer", "minimum": 1}),
                 "welfare": ("1: only residents who live alone", {"enum": ["1"]})}, responses=PAGE),
    Route("GET", "/ops/alerts/{aid}/unreached.csv", views.unreached_csv,
          "Residents not yet confirmed, by name, why and what next (audited)", tag=TAG,
          responses={200: returns("The unreached, one a row", {"type": "string"}, "text/csv"), 303: PAGE[303]}),
    Route("POST", "/ops/alerts/{aid}/cancel", views.cancel_from_console,
          "Cancel the alert and its update rounds (operator; audited)", tag=TAG, body=form_body(CSRF, ("csrf",)),
          responses=ACTION),
    Route("POST", "/ops/alerts/{aid}/reopen", views.reopen_unreached,
          "Reopen the unreachable in place on channels or contact points not yet tried (operator; audited)",
          tag=TAG, body=form_body({**CSRF, "channel": "any, push, sms, voice or mail",
                                   "again": "1: also contact points already tried"}, ("csrf", "channel")),
          responses=ACTION),
    Route("POST", "/ops/alerts/{aid}/welfare", views.record_welfare_visit,
          "Record a welfare visit to a resident (operator; audited)", tag=TAG,
          body=form_body({**CSRF, "resident": "Resident id", "note": "What the visit found"}, ("csrf", "resident")),
          responses=ACTION),
    Route("GET", "/ops/providers", views.providers_page, "Provider health: error rate, latency, traffic split",
          tag=TAG, responses=PAGE),
    Route("GET", "/ops/reach", views.reach_page, "Reach per district, stale contacts, time to confirmation",
          tag=TAG, responses=PAGE),
    Route("GET", "/ops/audit", views.audit_page, "The audit log of operator actions", tag=TAG,
          query={"before": ("Id of the last entry of the previous page", {"type": "string"})}, responses=PAGE),
    Route("GET", "/ops/operators", admin.operators_page, "Operator accounts (admin)", tag=TAG, responses=PAGE),
    Route("POST", "/ops/operators", admin.add_operator, "Create an operator (admin; audited)", tag=TAG,
          body=form_body({**CSRF, "name": "Operator name", "role": "viewer, operator or admin",
                          "password": "At least 12 characters"}, ("csrf", "name", "role", "password")),
          responses=ACTION),
    Route("POST", "/ops/operators/{name}", admin.change_operator,
          "Set an operator's role, or disable or enable the account (admin; audited)", tag=TAG,
          body=form_body({**CSRF, "role": "viewer, operator or admin", "disabled": "1 to disable, 0 to enable"},
                         ("csrf",)), responses=ACTION),
    Route("GET", "/static/{name}", static_file, "CSS and JS of the console and resident pages", tag=TAG,
          responses={200: {"description": "CSS or JavaScript", "content": {
              t: {"schema": {"type": "string"}} for t in ("text/css", "text/javascript")}}, 304: "Not modified"}),
]


def mount(app: web.Application) -> None:
    """What the console needs besides its routes: live streams end at shutdown."""
    app[sse.STOP] = asyncio.Event()
    app.on_shutdown.append(sse.stop_streams)
