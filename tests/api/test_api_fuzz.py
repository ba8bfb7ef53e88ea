"""Generated requests, valid and invalid, over every operation of the agency
API (bench/schemathesis_run.py runs 10,000 and more): no answer is a 5xx, every
refusal is an RFC 9457 problem, every answer is what the document describes."""

from __future__ import annotations

import pytest
import requests

from tests.api.api_fuzz import RunningGateway, fuzz

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES_PER_OPERATION = 20  # per generation mode: about 800 cases in all, under a minute


def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(stack):
    with RunningGateway(stack.settings, stack.urls) as gateway:
        base = stack.settings.public_url
        for i in range(3):  # a few residents, so that alerts to their district are accepted
            requests.put(f"{base}/v1/residents/seed{i}", headers={"Authorization": f"Bearer {gateway.key}"},
                         json={"languages": ["ko"], "district": "11110"}, timeout=10).raise_for_status()
        figures = fuzz(base, gateway.key, EXAMPLES_PER_OPERATION, seed=12)
    assert figures.operations >= 20 and figures.cases >= 500, figures
    assert figures.server_errors == 0 and figures.not_problem_4xx == 0, figures.failures
    assert not figures.failures, "\n\n".join(f"{k}\n{v}" for k, v in figures.failures.items())
