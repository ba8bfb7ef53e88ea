"""Operator accounts, managed by admins: list, create, change role, disable."""

from __future__ import annotations

from aiohttp import web

from ..api.http import STATE
from . import auth
from .auth import FORM, ROLES, SESSION, page
from .html import render


@page("admin")
async def operators_page(request: web.Request) -> web.Response:
    redis, session = request.app[STATE]["redis"], request[SESSION]
    return render("ops/operators.html", operators=await auth.operators(redis), roles=ROLES, session=session,
                  flash=await auth.take_flash(redis, session))


@page("admin")
async def add_operator(request: web.Request) -> web.Response:
    redis, session, form = request.app[STATE]["redis"], request[SESSION], request[FORM]
    name, role = str(form.get("name", "")).strip().lower(), str(form.get("role", ""))
    try:
        await auth.create_operator(redis, name, role, str(form.get("password", "")))
    except auth.OperatorError as e:
        await auth.flash(redis, session, f"Not created: {e}.")
    else:
        await auth.audit(redis, session.operator.name, "create operator", name, role)
        await auth.flash(redis, session, f"Operator {name} created as {role}.")
    raise web.HTTPSeeOther("/ops/operators")


@page("admin")
async def change_operator(request: web.Request) -> web.Response:
    """Set a role, or disable or enable an account (which ends its sessions at their next request)."""
    redis, session, form = request.app[STATE]["redis"], request[SESSION], request[FORM]
    name = request.match_info["name"]
    try:
        if name == session.operator.name:
            raise auth.OperatorError("admins cannot change their own account here")
        if "role" in form:
            await auth.set_role(redis, name, str(form["role"]))
            what, detail = "set role", str(form["role"])
        else:
            disabled = form.get("disabled") == "1"
            await auth.set_disabled(redis, name, disabled)
            what, detail = ("disable operator" if disabled else "enable operator"), ""
    except auth.OperatorError as e:
        await auth.flash(redis, session, f"Not changed: {e}.")
    else:
        await auth.audit(redis, session.operator.name, what, name, detail)
        await auth.flash(redis, session, f"{name}: {what} {detail}".strip() + ".")
    raise web.HTTPSeeOther("/ops/operators")
