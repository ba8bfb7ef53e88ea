"""A route table that also describes itself, so `/v1/openapi.json` is made
from the same list that mounts the routes and cannot forget one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable
    summary: str
    scope: str | None = None
    # {"application/json": schema, ...} for the request body.
    body: dict[str, Any] | None = None
    # status -> description, or `returns(...)` for a response with a body (every
    # error status is described as problem+json, and the common ones are added).
    responses: dict[int, str | dict] = field(default_factory=lambda: {200: "OK"})
    # query parameter -> (description, schema)
    query: dict[str, tuple[str, dict]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    tag: str = "agency"


def returns(description: str, schema: dict, media_type: str = "application/json") -> dict:
    """A response with a body, for `Route.responses`: the schema is what the handler
    really sends (tests/e2e/test_openapi_responses.py holds the handlers to it)."""
    return {"description": description, "content": {media_type: {"schema": schema}}}
