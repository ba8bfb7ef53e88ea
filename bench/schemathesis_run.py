"""schemathesis over every operation of the agency API, against a real
gateway (embedded Redis, a Celery worker, the API) on loopback: at least
10,000 generated cases, valid and invalid.

    .venv/bin/python bench/schemathesis_run.py                  # 250 a mode an operation: >10,000 cases
    .venv/bin/python bench/schemathesis_run.py --examples 50

Prints cases, operations, answers by status, server errors, 4xx that are not
problem+json, and each distinct failed check with a curl command that repeats it.
tests/e2e/test_api_fuzz.py runs the same, bounded, in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.api_fuzz import RunningGateway, fuzz  # noqa: E402
from tests.e2e.conftest import start_stack, stop_stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=250, help="cases per operation and generation mode")
    parser.add_argument("--seed", type=int, default=None, help="derandomise (same cases every run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            with RunningGateway(stack.settings, stack.urls) as gateway:
                base = stack.settings.public_url
                for i in range(3):
                    requests.put(f"{base}/v1/residents/seed{i}", headers={"Authorization": f"Bearer {gateway.key}"},
                                 json={"languages": ["ko"], "district": "11110"}, timeout=10).raise_for_status()
                started = time.perf_counter()
                figures = fuzz(base, gateway.key, args.examples, seed=args.seed)
                took = time.perf_counter() - started
        finally:
            stop_stack(stack)
    print(f"cases {figures.cases:,}, operations {figures.operations}, {took:.0f} s")
    print("answers: " + ", ".join(f"{s}: {n:,}" for s, n in sorted(figures.statuses.items())))
    print(f"server errors (5xx): {figures.server_errors}")
    print(f"4xx not application/problem+json: {figures.not_problem_4xx}")
    print(f"failed checks (distinct): {len(figures.failures)}")
    for (operation, kind, message), curl in figures.failures.items():
        print(f"\n{operation}: {kind}: {message}\n  {curl}")


if __name__ == "__main__":
    main()
