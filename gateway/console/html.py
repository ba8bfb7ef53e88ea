"""HTML of the console and the resident pages: one jinja environment, one set
of security headers, their CSS and JS.

Pages are whole without JavaScript; the scripts in gateway/static only add
live counters and speech.  Nothing is loaded from another origin.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..api.routing import returns
from ..config import TEMPLATES_DIR

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Resident links carry their token in the path: never hand it to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def clock(ms: int | str | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(int(ms) / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


ENV = Environment(loader=FileSystemLoader(TEMPLATES_DIR / "web"), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(clock=clock, duration=duration)
ENV.globals.update(percent=percent)


def render(template: str, /, *, status: int = 200, headers: dict | None = None, **context) -> web.Response:
    return web.Response(text=ENV.get_template(template).render(**context), status=status, content_type="text/html",
                        headers={**HEADERS, **(headers or {})})


def render_error(status: int, title: str, detail: str, *, session=None) -> web.Response:
    return render("ops/error.html", status=status, title=title, detail=detail, session=session)


STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}


@lru_cache(maxsize=None)
def _static(name: str) -> tuple[bytes, str, str] | None:
    path = STATIC_DIR / name
    if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
        return None
    body = path.read_bytes()
    return body, STATIC_TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


async def static_file(request: web.Request) -> web.Response:
    """The console's and resident pages' CSS and JS (the only files served)."""
    found = _static(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type, etag = found
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers={"ETag": etag, "Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


HTML_PAGE = returns("HTML page", {"type": "string"}, "text/html")


def form_body(fields: dict[str, str], required: tuple[str, ...] = ()) -> dict:
    """An HTML form's fields (name -> description), for the OpenAPI document."""
    schema = {"type": "object", "properties": {n: {"type": "string", "description": d} for n, d in fields.items()},
              "required": list(required)}
    return {"application/x-www-form-urlencoded": schema}
