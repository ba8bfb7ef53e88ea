"""schemathesis against a running gateway's own OpenAPI document: generated
requests, valid and invalid, over every operation of the agency API. A case
fails when the answer is a 5xx, a 4xx that is not an RFC 9457 problem, or a
body, status or content type the document does not describe.

Shared by tests/api/test_api_fuzz.py (bounded, in CI) and
bench/schemathesis_run.py (10,000 cases and more)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from gateway import service
from gateway.agencies import create_agency
from gateway.problems import PROBLEM_JSON
from gateway.store import connect

from .test_openapi_responses import AGENCY_TAGS

PROBLEM_FIELDS = ("type", "title", "status")


def _content_type(response) -> str:
    return (response.headers.get("content-type") or [""])[0]


@schemathesis.check
def refusal_is_a_problem(ctx, response, case):
    """Every 4xx is application/problem+json with RFC 9457's fields and its own status."""
    if 400 <= response.status_code < 500:
        ctype = _content_type(response)
        if not ctype.startswith(PROBLEM_JSON):
            raise AssertionError(f"{response.status_code} as {ctype or 'no content type'}, not problem+json")
        body = response.json()
        missing = [f for f in PROBLEM_FIELDS if f not in body]
        if missing or body["status"] != response.status_code:
            raise AssertionError(f"problem without {missing} or with another status: {body}")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          refusal_is_a_problem]


@dataclass
class Figures:
    operations: int = 0
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    not_problem_4xx: int = 0
    failures: dict = field(default_factory=dict)  # (operation, check) -> first example


class RunningGateway:
    """The API (no pump) of a started stack, in a thread of its own, so the
    synchronous, hypothesis-driven client can call it."""

    def __init__(self, settings, urls):
        self.settings, self.urls = settings, urls
        self.ready, self.key = threading.Event(), None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)
        self._stop = None

    async def _serve(self):
        self._stop = asyncio.Event()
        redis = connect(self.urls.redis)
        async with service.api_server(self.settings, self.urls, with_pump=False):
            _, self.key = await create_agency(redis, "Fuzzing city", rate_per_s=1_000_000)
            self.ready.set()
            await self._stop.wait()
        await redis.aclose()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(60), "the API did not start"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)


def fuzz(base_url: str, key: str, examples_per_operation: int, *, seed: int | None = None) -> Figures:
    """Run `examples_per_operation` positive and as many negative cases on each agency operation."""
    schema = schemathesis.openapi.from_url(f"{base_url}/v1/openapi.json")
    figures = Figures()
    auth = {"Authorization": f"Bearer {key}"}
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("tags", [""])[0] not in AGENCY_TAGS:
            continue
        figures.operations += 1
        for mode in GenerationMode:
            _run(operation, mode, examples_per_operation, base_url, auth, session, figures, seed)
    return figures


def _run(operation, mode, examples, base_url, auth, session, figures, seed):
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=seed is not None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def one_case(case):
        # Our key always: a generated one only meets the 401 that tests/api/test_agency_api.py covers.
        case.headers = {**(case.headers or {}), **auth}
        response = case.call(base_url=base_url, session=session, timeout=30)
        figures.cases += 1
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures.server_errors += 1
        elif 400 <= response.status_code and not _content_type(response).startswith(PROBLEM_JSON):
            figures.not_problem_4xx += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as e:  # one failed check, or schemathesis' group of them
            # Recorded, not raised: the run goes on to its full count of cases.
            figures.failures.setdefault((operation.label, type(e).__name__, str(e)[:300]), case.as_curl_command())

    try:
        one_case()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing to make invalid: an operation without parameters or body, in negative mode
