"""An integrator who generates a client from /v1/openapi.json gets what the
document promises: every answer of a real gateway, success or problem, is
checked against the document's schema for that operation and status."""

from __future__ import annotations

import re

import orjson
import pytest
from capkit import CAP, answers_sms, cap_doc, placed
from jsonschema import Draft202012Validator, FormatChecker

from gateway import samples
from gateway.agencies import create_agency

pytestmark = pytest.mark.e2e

ALERT = samples.heat_wave({"districts": [samples.DISTRICT]}, languages=("ko",))


# The operations an agency's client calls (not the console's or residents' pages, nor provider webhooks).
AGENCY_TAGS = {"agency", "reports", "ops", "meta"}


class Documented:
    """Calls the API and holds each answer to the served OpenAPI document."""

    def __init__(self, city, spec: dict):
        self.city, self.spec, self.checked = city, spec, set()

    async def __call__(self, method: str, path: str, *, key: str | None = None, **kw):
        headers = {"Authorization": f"Bearer {key or self.city.key}", **kw.pop("headers", {})}
        async with self.city.http.request(method, f"{self.city.api}{path}", headers=headers, **kw) as r:
            raw = await r.read()
            ctype = r.headers.get("Content-Type", "").split(";")[0]
            status = r.status
        template = self.template(path.split("?")[0], method)
        responses = self.spec["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {template} answered {status}, not in the document"
        described = responses[str(status)]
        self.checked.add((method.lower(), template))
        if not raw:
            assert "content" not in described, f"{method} {template} {status}: the document promises a body"
            return status, None
        assert ctype in described.get("content", {}), f"{method} {template} {status}: {ctype} is not documented"
        schema = described["content"][ctype]["schema"]
        body = orjson.loads(raw) if ctype.endswith("json") else raw.decode()
        # The document's components travel with the schema, so its $refs resolve.
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in Draft202012Validator(
            {**schema, "components": self.spec["components"]}, format_checker=FormatChecker()).iter_errors(body)]
        assert not errors, f"{method} {template} {status} differs from the document: {errors[:5]}"
        return status, body

    def template(self, path: str, method: str) -> str:
        for template, ops in self.spec["paths"].items():
            pattern = re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template))
            if method.lower() in ops and re.fullmatch(pattern, path):
                return template
        raise AssertionError(f"{method} {path} is not in the document")


@pytest.fixture
async def documented(city):
    async with city.http.get(f"{city.api}/v1/openapi.json") as r:
        return Documented(city, await r.json())


async def test_every_success_answer_of_the_agency_api_is_what_the_document_describes(city, documented):
    call = documented
    resident = placed("r1", (37.5735, 126.9790), {"type": "phone", "number": "010-5550-0101",
                                                  "handset": "feature_phone"})
    city.sim.behaviour.add_many([{"resident": "r1", **answers_sms("+821055500101")}])
    assert (await call("PUT", "/v1/residents/r1", json=resident))[0] == 201
    assert (await call("PUT", "/v1/residents/r1", json=resident))[0] == 200
    assert (await call("GET", "/v1/residents/r1"))[0] == 200
    rows = b"\n".join(orjson.dumps(placed(f"i{i}", None, district="11140")) for i in range(3))
    for mode in ("", "?bad_rows=skip"):
        status, _ = await call("POST", f"/v1/residents/import{mode}", data=rows + b"\n{bad",
                               headers={"Content-Type": "application/x-ndjson"})
        assert status == (200 if mode else 422)

    status, accepted = await call("POST", "/v1/alerts", json=ALERT)
    assert status == 202
    aid = accepted["id"]
    await city.settled(aid)
    for path in ("/v1/alerts", f"/v1/alerts/{aid}", f"/v1/alerts/{aid}/deliveries?limit=1",
                 f"/v1/alerts/{aid}/deliveries/r1", f"/v1/alerts/{aid}.cap", "/v1/agency",
                 "/v1/agency/callbacks/dead", "/v1/reports/reach", "/healthz", "/metrics", "/v1/openapi.json"):
        assert (await call("GET", path))[0] == 200, path
    assert (await call("POST", f"/v1/alerts/{aid}/reopen", json={}))[0] == 202
    assert (await call("POST", "/v1/residents/reverify", json={}))[0] == 200
    assert (await call("POST", f"/v1/alerts/{aid}/update", json={**ALERT, "event": "Heat wave (longer)"}))[0] == 202
    assert (await call("POST", f"/v1/alerts/{aid}/cancel"))[0] == 202

    status, cap = await call("POST", "/v1/alerts", data=cap_doc("ko_heatwave.xml"), headers={"Content-Type": CAP})
    assert status == 202 and cap["cap"]["msg_type"] == "Alert"
    assert (await call("POST", "/v1/alerts/preview", json={"alert": ALERT, "resident_id": "r1"}))[0] == 200
    assert (await call("POST", "/v1/audience/preview", json={"audience": {"districts": ["11110"]}}))[0] == 200

    status, registered = await call("PUT", "/v1/agency/callback", json={"url": "http://127.0.0.1:9/hook"})
    assert status == 200 and registered["secret"]
    assert (await call("POST", "/v1/agency/callbacks/dead/replay", json={}))[0] == 200
    assert (await call("DELETE", "/v1/agency/callback"))[0] == 204
    assert (await call("DELETE", "/v1/residents/r1"))[0] == 204
    agency_api = {(m, path) for path, ops in documented.spec["paths"].items() for m, op in ops.items()
                  if op["tags"][0] in AGENCY_TAGS}
    assert agency_api - documented.checked == set()


async def test_every_refusal_of_the_agency_api_is_the_documented_problem(city, documented):
    call = documented
    _, reader = await create_agency(city.redis, "Statistics office", scopes=["alerts:read"])
    refusals = [
        (await call("GET", "/v1/alerts", key="nobody"))[0],
        (await call("POST", "/v1/alerts", key=reader, json=ALERT))[0],
        (await call("GET", "/v1/alerts/al_missing"))[0],
        (await call("POST", "/v1/alerts", data=b"{", headers={"Content-Type": "application/json"}))[0],
        (await call("POST", "/v1/alerts", data=b"x", headers={"Content-Type": "text/plain"}))[0],
        (await call("POST", "/v1/alerts", json={**ALERT, "severity": "Apocalyptic"}))[0],
        (await call("POST", "/v1/agency/callbacks/dead/replay", json={}))[0],
        (await call("POST", "/v1/residents/import?bad_rows=maybe", data=b"",
                    headers={"Content-Type": "text/csv"}))[0],
    ]
    assert refusals == [401, 403, 404, 400, 415, 422, 409, 422]
