"""Operators, their sessions, CSRF tokens, roles and the audit log.

Passwords are argon2id hashes.  A session is a Redis hash named by 32 random
bytes, carried in an HttpOnly SameSite=Strict cookie; it holds the CSRF
token that every form posts back (synchronizer token).  The login form has a
session too, before anyone is signed in, so it is protected the same way,
and signing in starts a fresh session (no fixation).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .. import keys
from ..api.http import STATE
from ..forms import posted_form
from ..transitions import now_ms, text
from .html import render_error

ROLES = ("viewer", "operator", "admin")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD = 12
COOKIE = "gw_ops"
SESSION_IDLE_S = 8 * 3600
LOGIN_FORM_S = 15 * 60
# Failed logins per name before it is locked for LOCKOUT_S.
MAX_FAILURES = 10
LOCKOUT_S = 15 * 60
AUDIT_MAX = 100_000

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))

SESSION = web.RequestKey("ops_session", object)
FORM = web.RequestKey("ops_form", object)


@dataclass(frozen=True)
class Operator:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    operator: Operator | None


class OperatorError(ValueError):
    pass


# Operators ---------------------------------------------------------------

async def create_operator(redis, name: str, role: str, password: str) -> Operator:
    if not NAME.match(name):
        raise OperatorError("name: 2-32 of a-z 0-9 _ . -, starting with a letter or digit")
    if role not in ROLES:
        raise OperatorError(f"role: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"password: at least {MIN_PASSWORD} characters")
    digest = await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)
    if not await redis.hsetnx(keys.operator(name), "hash", digest):
        raise OperatorError(f"operator {name} exists already")
    await redis.hset(keys.operator(name), mapping={"role": role, "created_ms": now_ms()})
    await redis.sadd(keys.OPERATORS, name)
    return Operator(name, role)


async def set_role(redis, name: str, role: str) -> None:
    if role not in ROLES:
        raise OperatorError(f"role: one of {', '.join(ROLES)}")
    if not await redis.exists(keys.operator(name)):
        raise OperatorError(f"no operator {name}")
    await redis.hset(keys.operator(name), "role", role)


async def set_disabled(redis, name: str, disabled: bool) -> None:
    if not await redis.exists(keys.operator(name)):
        raise OperatorError(f"no operator {name}")
    await redis.hset(keys.operator(name), "disabled", int(disabled))


async def operators(redis) -> list[dict]:
    names = sorted(text(n) for n in await redis.smembers(keys.OPERATORS))
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.hmget(keys.operator(name), "role", "created_ms", "disabled")
    return [{"name": name, "role": text(role), "created_ms": int(created or 0), "disabled": disabled == b"1"}
            for name, (role, created, disabled) in zip(names, await pipe.execute())]


async def _operator(redis, name: str) -> Operator | None:
    role, disabled = await redis.hmget(keys.operator(name), "role", "disabled")
    if role is None or disabled == b"1":
        return None
    return Operator(name, text(role))


async def verify(redis, name: str, password: str) -> Operator | None:
    """The operator if the password is right; None, slowly, otherwise."""
    fails = keys.login_failures(name)
    if int(await redis.get(fails) or 0) >= MAX_FAILURES:
        return None
    digest = await redis.hget(keys.operator(name), "hash") if NAME.match(name) else None
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, _hasher.verify, text(digest) if digest else _DUMMY, password)
        ok = digest is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        pipe = redis.pipeline(transaction=True)
        pipe.incr(fails)
        pipe.expire(fails, LOCKOUT_S)
        await pipe.execute()
        return None
    await redis.delete(fails)
    if _hasher.check_needs_rehash(text(digest)):
        await redis.hset(keys.operator(name), "hash", await loop.run_in_executor(None, _hasher.hash, password))
    return await _operator(redis, name)


# Sessions ----------------------------------------------------------------

async def open_session(redis, operator: Operator | None = None) -> Session:
    session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), operator)
    fields = {"csrf": session.csrf, "created_ms": now_ms()}
    if operator:
        fields["operator"] = operator.name
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.session(session.id), mapping=fields)
    pipe.expire(keys.session(session.id), SESSION_IDLE_S if operator else LOGIN_FORM_S)
    await pipe.execute()
    return session


async def load_session(redis, sid: str | None, *, touch: bool = True) -> Session | None:
    """The session, its idle timer reset if `touch`; the role is read afresh so a change takes effect at once."""
    if not sid or len(sid) > 64 or not sid.isascii():  # bytes that are not text arrive as surrogates
        return None
    fields = await redis.hgetall(keys.session(sid))
    if not fields:
        return None
    operator = None
    if b"operator" in fields:
        operator = await _operator(redis, text(fields[b"operator"]))
        if operator is None:  # disabled or removed since
            await redis.delete(keys.session(sid))
            return None
        if touch:
            await redis.expire(keys.session(sid), SESSION_IDLE_S)
    return Session(sid, text(fields[b"csrf"]), operator)


async def flash(redis, session: Session, message: str) -> None:
    """A line the next page shows once (what an action did)."""
    await redis.hset(keys.session(session.id), "flash", message[:500])


async def take_flash(redis, session: Session) -> str:
    pipe = redis.pipeline(transaction=True)
    pipe.hget(keys.session(session.id), "flash")
    pipe.hdel(keys.session(session.id), "flash")
    message, _ = await pipe.execute()
    return text(message) if message else ""


async def end_session(redis, sid: str) -> None:
    await redis.delete(keys.session(sid))


def set_cookie(response: web.StreamResponse, request: web.Request, sid: str) -> None:
    secure = request.app[STATE]["settings"].public_url.startswith("https:")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=secure, path="/ops")


def csrf_ok(form, session: Session) -> bool:
    return hmac.compare_digest(str(form.get("csrf", "")).encode(), session.csrf.encode())


def page(role: str = "viewer", *, touch: bool = True):
    """Guards a console handler: a session of at least `role`, and for a POST a valid CSRF token.

    Without a session the browser goes to the login page and comes back after.
    `touch=False` for what a page does by itself (live updates), so an open
    page does not keep an idle session alive.
    """
    def wrap(handler):
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            redis = request.app[STATE]["redis"]
            session = await load_session(redis, request.cookies.get(COOKIE), touch=touch)
            if session is None or session.operator is None:
                target = request.path_qs if request.method == "GET" else "/ops/"
                raise web.HTTPSeeOther(f"/ops/login?next={quote(target, safe='')}")
            request[SESSION] = session
            if not session.operator.can(role):
                return render_error(403, "Not allowed",
                                    f"This needs the {role} role; you are signed in as {session.operator.role}.",
                                    session=session)
            if request.method == "POST":
                form = await posted_form(request)
                if not csrf_ok(form, session):
                    return render_error(403, "Form expired",
                                        "The form was not accepted. Go back, reload the page and try again.",
                                        session=session)
                request[FORM] = form
            return await handler(request)

        return guarded

    return wrap


# Audit -------------------------------------------------------------------

async def audit(redis, who: str, action: str, target: str = "", detail: str = "") -> None:
    await redis.xadd(keys.AUDIT, {"who": who, "action": action, "target": target, "detail": detail[:500]},
                     maxlen=AUDIT_MAX, approximate=True)


async def audit_log(redis, before: str | None = None, count: int = 100) -> list[dict]:
    """Newest first; `before` is the id of the last entry of the previous page."""
    top = f"({before}" if before else "+"
    out = []
    for entry_id, fields in await redis.xrevrange(keys.AUDIT, max=top, min="-", count=count):
        entry_id = text(entry_id)
        out.append({"id": entry_id, "at_ms": int(entry_id.split("-")[0]),
                    **{text(k): text(v) for k, v in fields.items()}})
    return out
