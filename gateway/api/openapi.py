"""OpenAPI 3.1, built from the route table and the channels' webhooks."""

from __future__ import annotations

import re

from aiohttp import web

from .. import console, resident_pages
from ..problems import PROBLEM_JSON
from ..schemas import ALERT, RESIDENT
from .http import STATE, json_response

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "detail"], "properties": {
            "field": {"type": "string"}, "detail": {"type": "string"}}}},
    },
}


def _params(path: str) -> list[dict]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"{(\w+)}", path)]


# Pages for people (the console, resident pages) answer errors with an HTML page.
HTML_ERROR = {"text/html": {"schema": {"type": "string"}}}
PROBLEM_ERROR = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
COMMON_ERRORS = {400: "Malformed", 401: "No or unknown API key", 403: "Missing scope", 404: "Not found",
                 413: "Body too large", 422: "Invalid fields", 429: "Rate limited"}


def _responses(route) -> dict:
    pages = route.tag in (console.TAG, resident_pages.TAG)
    errors = HTML_ERROR if pages else PROBLEM_ERROR
    out = {}
    for code, response in route.responses.items():
        if isinstance(response, str):
            response = {"description": response}
            if code >= 400:
                response["content"] = errors
        out[str(code)] = response
    if not pages:
        for code, desc in COMMON_ERRORS.items():
            out.setdefault(str(code), {"description": desc, "content": errors})
    return out


def _operation(route) -> dict:
    op = {"summary": route.summary, "tags": [route.tag], "operationId": route.handler.__name__,
          "parameters": _params(route.path)}
    op["parameters"] += [{"name": n, "in": "query", "required": False, "description": d, "schema": s}
                         for n, (d, s) in route.query.items()]
    op["parameters"] += [{"name": n, "in": "header", "required": False, "description": d,
                          "schema": {"type": "string"}} for n, d in route.headers.items()]
    if route.body:
        op["requestBody"] = {"required": True, "content": {t: {"schema": s} for t, s in route.body.items()}}
    op["responses"] = _responses(route)
    if route.scope:
        op["security"] = [{"apiKey": []}]
        op["description"] = f"Needs the scope `{route.scope}`."
    return op


def build(routes, webhooks, server_url: str) -> dict:
    paths: dict[str, dict] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    for method, route_path, channel, handler in webhooks:
        path = re.sub(r"{(\w+):[^/]+}", r"{\1}", route_path)  # OpenAPI names the parameter, not its pattern
        paths.setdefault(path, {})[method.lower()] = {
            "summary": (handler.__doc__ or f"{channel} provider webhook").strip().splitlines()[0],
            "tags": ["provider webhooks"], "operationId": f"{channel}_{handler.__name__}",
            "parameters": _params(path),
            "description": "Signed by the provider; an unsigned or tampered call gets 403 and changes nothing.",
            "responses": {"200": {"description": "Accepted; TwiML for Twilio, the reply's text for Kannel",
                                  "content": {t: {"schema": {"type": "string"}} for t in ("application/xml",
                                                                                           "text/plain")}},
                          "204": {"description": "Accepted"},
                          **{str(code): {"description": desc, "content": PROBLEM_ERROR} for code, desc in (
                              (400, "Malformed"), (403, "Bad signature"), (404, "No such alert, step or token"),
                              (413, "Body too large"))}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Accessibility gateway", "version": "1",
                 "description": "Public alerts that fall back from channel to channel until each resident "
                                "confirmably has them."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Alert": ALERT, "Resident": RESIDENT, "Problem": PROBLEM},
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


async def serve(request: web.Request) -> web.Response:
    return json_response(request.app[STATE]["spec"])
