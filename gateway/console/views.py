"""The console's pages: sign-in, alerts (live), one alert in depth, its unreached
list, the actions on it, provider health, reach, and the audit log.

Every page renders whole on the server; every action is a POST with the
session's CSRF token, checked by `auth.page`, and lands in the audit log.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import NoReturn

import orjson
from aiohttp import web

from channels.routing import current_split

from .. import engine_health, keys, reopen
from ..alerts import Alerts
from ..api.http import STATE
from ..forms import posted_form
from ..transitions import STATES, text
from . import actions, auth, charts, outcomes, providers, reach, unreached
from .auth import FORM, SESSION, page
from .html import render, render_error

ALERTS_SHOWN = 50
ROWS_PER_PAGE = 100
CSV_CHUNK = 500
LIVE_STATES = ("planning", "active")
STREAM_ID = re.compile(r"^\d{1,15}-\d{1,6}$")


def _safe_next(target: str | None) -> str:
    """Only a console path: never off-site after signing in."""
    if target and target.startswith("/ops") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ops/alerts"


async def console_home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/ops/alerts")


async def sign_in_form(request: web.Request) -> web.Response:
    redis = request.app[STATE]["redis"]
    session = await auth.load_session(redis, request.cookies.get(auth.COOKIE))
    nxt = _safe_next(request.query.get("next"))
    if session and session.operator:
        raise web.HTTPSeeOther(nxt)
    if session is None:
        session = await auth.open_session(redis)
    response = render("ops/login.html", session=None, csrf=session.csrf, next=nxt, error="", name="")
    auth.set_cookie(response, request, session.id)
    return response


async def sign_in(request: web.Request) -> web.Response:
    redis = request.app[STATE]["redis"]
    session = await auth.load_session(redis, request.cookies.get(auth.COOKIE))
    form = await posted_form(request)
    if session is None or not auth.csrf_ok(form, session):
        return render_error(403, "Form expired", "The sign-in form had expired. Open it again and sign in.")
    name, nxt = str(form.get("name", "")).strip().lower(), _safe_next(form.get("next"))
    operator = await auth.verify(redis, name, str(form.get("password", "")))
    if operator is None:
        await auth.audit(redis, name[:32] or "-", "sign-in failed")
        return render("ops/login.html", status=401, session=None, csrf=session.csrf, next=nxt, name=name,
                      error="That name and password do not match an active operator.")
    await auth.end_session(redis, session.id)
    fresh = await auth.open_session(redis, operator)
    await auth.audit(redis, operator.name, "sign in")
    response = web.Response(status=303, headers={"Location": nxt})
    auth.set_cookie(response, request, fresh.id)
    return response


@page("viewer")
async def sign_out(request: web.Request) -> web.Response:
    redis, session = request.app[STATE]["redis"], request[SESSION]
    await auth.end_session(redis, session.id)
    await auth.audit(redis, session.operator.name, "sign out")
    response = web.Response(status=303, headers={"Location": "/ops/login"})
    response.del_cookie(auth.COOKIE, path="/ops")
    return response


async def _layout(request: web.Request) -> dict:
    session, redis = request[SESSION], request.app[STATE]["redis"]
    return {"session": session, "flash": await auth.take_flash(redis, session), "engine": await engine_health.read(redis)}


async def store_outage(request: web.Request) -> web.Response:
    """Redis does not answer: no session can be checked, so no alert is shown,
    but what the broker says is, and the page tries again by itself."""
    health = await engine_health.read(request.app[STATE]["redis"])
    return render("ops/outage.html", status=503, headers={"Retry-After": "5"}, session=None,
                  engine=dataclasses.replace(health, redis_up=False))


@page("viewer")
async def alerts_page(request: web.Request) -> web.Response:
    redis = request.app[STATE]["redis"]
    store = Alerts(redis)
    total = await redis.zcard(keys.ALERTS)
    pages = _pages(total, ALERTS_SHOWN)
    page_no = _page_number(request, pages)
    start = (page_no - 1) * ALERTS_SHOWN
    ids = [text(a) for a in await redis.zrevrange(keys.ALERTS, start, start + ALERTS_SHOWN - 1)]
    summaries = [await store.summary(aid) for aid in ids]
    running = [s["id"] for s in summaries if s["status"] in LIVE_STATES]
    return render("ops/alerts.html", alerts=summaries, live_ids=running, first=start + 1, total=total,
                  page=page_no, pages=pages, **await _layout(request))


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


def _page_number(request: web.Request, pages: int) -> int:
    """`?page=N`: past the end shows the last page, anything not a number the first."""
    try:
        return min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        return 1


def about_alert(role: str):
    """A page or action about one alert: `auth.page(role)`, then the alert
    (the handler gets its id and stored hash) or a 404 page."""
    def wrap(handler):
        @page(role)
        @functools.wraps(handler)
        async def with_alert(request: web.Request) -> web.StreamResponse:
            aid = request.match_info["aid"]
            meta = await Alerts(request.app[STATE]["redis"]).get(aid)
            if meta is None:
                return render_error(404, "No such alert", f"There is no alert {aid}.", session=request[SESSION])
            return await handler(request, aid, meta)
        return with_alert
    return wrap


async def _back_to_alert(request: web.Request, aid: str, message: str, anchor: str = "") -> NoReturn:
    """After an action: say what happened on the alert's page."""
    await auth.flash(request.app[STATE]["redis"], request[SESSION], message)
    raise web.HTTPSeeOther(f"/ops/alerts/{aid}{anchor}")


@about_alert("viewer")
async def alert_page(request: web.Request, aid: str, meta: dict) -> web.Response:
    state = request.app[STATE]
    redis = state["redis"]
    store = Alerts(redis)
    summary = await store.summary(aid)
    flow = await outcomes.scan(redis, aid)
    tallies, sampled = await providers.alert_tallies(redis, aid)
    welfare_only = request.query.get("welfare") == "1"
    rids = await unreached.open_rids(redis, aid)
    if welfare_only:
        rids = await _living_alone(redis, rids)
    pages = _pages(len(rids), ROWS_PER_PAGE)
    page_no = _page_number(request, pages)
    start = (page_no - 1) * ROWS_PER_PAGE
    rows = await unreached.rows(redis, state["engine"].vault, aid, rids[start:start + ROWS_PER_PAGE])
    return render(
        "ops/alert.html", alert=summary, doc=meta["doc"], meta=meta, states=STATES,
        running=meta["status"] in LIVE_STATES,
        flow_chart=charts.flow(flow), flow=flow, curve=charts.confirmation_curve(flow.ttc, summary["targeted"]),
        ttc={ch: outcomes.median(v) for ch, v in flow.ttc.items()},
        tallies=sorted(tallies.values(), key=lambda t: -t.attempts),
        sampled=sampled, quantile=providers.quantile, rows=rows, total=len(rids), page=page_no,
        pages=pages, welfare_only=welfare_only, reopened=int(await redis.hget(keys.alert_counts(aid), "reopened") or 0),
        retry_channels=sorted(state["engine"].specs()), **await _layout(request))


async def _living_alone(redis, rids: list[str]) -> list[str]:
    """Needs are in the profile, unencrypted: the filter opens no names."""
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hget(keys.resident(rid), "p")
    return [rid for rid, p in zip(rids, await pipe.execute()) if p and "lives_alone" in orjson.loads(p)["n"]]


@about_alert("viewer")
async def unreached_csv(request: web.Request, aid: str, _meta: dict) -> web.StreamResponse:
    state = request.app[STATE]
    redis, session = state["redis"], request[SESSION]
    rids = await unreached.open_rids(redis, aid)
    # Names leave the system here: that is worth an audit line.
    await auth.audit(redis, session.operator.name, "export unreached", aid, f"{len(rids)} residents")
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{aid}-unreached.csv"'})
    await response.prepare(request)
    await response.write(b"\xef\xbb\xbf")  # so spreadsheet programs read the names as UTF-8
    for i in range(0, max(len(rids), 1), CSV_CHUNK):
        chunk = await unreached.rows(redis, state["engine"].vault, aid, rids[i:i + CSV_CHUNK])
        await response.write(unreached.to_csv_lines(chunk, header=i == 0).encode())
    await response.write_eof()
    return response


@about_alert("operator")
async def cancel_from_console(request: web.Request, aid: str, _meta: dict) -> web.Response:
    state, session = request.app[STATE], request[SESSION]
    done = await actions.cancel(state, aid)
    await auth.audit(state["redis"], session.operator.name, "cancel alert", aid,
                     "cancelled" if done else "nothing was open")
    await _back_to_alert(request, aid, "Alert cancelled: no further step starts." if done
                         else "The alert had already ended; nothing was changed.")


@about_alert("operator")
async def reopen_unreached(request: web.Request, aid: str, _meta: dict) -> web.Response:
    state, session, form = request.app[STATE], request[SESSION], request[FORM]
    channel = str(form.get("channel", ""))
    again = form.get("again") == "1"
    try:
        done = await reopen.reopen_unreached(state["redis"], state["engine"], state["dispatch"], aid,
                                             [channel] if channel != "any" else None, again=again,
                                             who=session.operator.name)
    except reopen.CannotReopen as e:
        await _back_to_alert(request, aid, f"Not reopened: {e}.")
    on = "any channel" if channel == "any" else channel
    await auth.audit(state["redis"], session.operator.name, "reopen unreached", aid,
                     f"{done.reopened} residents on {on}{' (again)' if again else ''}; "
                     f"{done.nothing_new} with nothing left to try")
    await _back_to_alert(request, aid, f"Reopened {done.reopened} residents on {on}." + (
        f" {done.nothing_new} have nothing left to try on {on}." if done.nothing_new else ""))


@about_alert("operator")
async def record_welfare_visit(request: web.Request, aid: str, _meta: dict) -> web.Response:
    state, session, form = request.app[STATE], request[SESSION], request[FORM]
    rid = str(form.get("resident", ""))
    try:
        await actions.welfare_visit(state["redis"], aid, rid, session.operator.name, str(form.get("note", "")))
    except actions.ActionError as e:
        await _back_to_alert(request, aid, f"Not recorded: {e}.")
    await auth.audit(state["redis"], session.operator.name, "welfare visit done", f"{aid}/{rid}",
                     str(form.get("note", ""))[:200])
    await _back_to_alert(request, aid, f"Welfare visit to {rid} recorded.", f"#r-{rid}")


@page("viewer")
async def providers_page(request: web.Request) -> web.Response:
    redis = request.app[STATE]["redis"]
    tallies, alerts_read = await providers.health(redis)
    total = sum(t.attempts for t in tallies)
    # What the SMS router sends where now, and when and why it last switched.
    split = await current_split(redis)
    return render("ops/providers.html", tallies=tallies, total=total, alerts_read=alerts_read,
                  quantile=providers.quantile, split=split, **await _layout(request))


@page("viewer")
async def reach_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await reach.report(state["redis"], state["engine"].specs(),
                              stale_days=state["settings"].contact_stale_days)
    return render("ops/reach.html", report=body, kinds=reach.KINDS, chart=charts.reach_bars(body["districts"]),
                  **await _layout(request))


@page("viewer")
async def audit_page(request: web.Request) -> web.Response:
    before = request.query.get("before", "")
    entries = await auth.audit_log(request.app[STATE]["redis"], before if STREAM_ID.match(before) else None)
    return render("ops/audit.html", entries=entries, **await _layout(request))
