"""Faults during a live alert, and what they cost: issue 12's chaos table.

    .venv/bin/python bench/chaos.py                          # every fault, 10,000 residents
    .venv/bin/python bench/chaos.py --only pump --residents 2000

For each fault a fresh gateway runs as a city runs it, one process per part
(tests/e2e/process_stack.py): redis-server with AOF (fsync every second), a
broker of its own (Redis, or RabbitMQ), `gateway api`, `gateway pump`, two
`gateway worker`s and the provider simulator; tests/e2e/fault_drill.py posts
the alert, strikes when a quarter of the texts are out, and judges (its doc
says how each column is measured). Below the table, per fault: sends in
flight at the fault, residents contacted again after they confirmed, timers
that fired early, and what /metrics showed while the fault lasted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from chaos_table import row, table  # noqa: E402
from fault_drill import ALERT, Run  # noqa: E402
from process_stack import ProcessStack  # noqa: E402

REDIS_UNREACHABLE_S = 30
PUMP_DOWN_S = 15
console = Console(width=150)

# The faults. Each starts when a quarter of the texts are out and returns when it has ended.

async def kill_worker(run: Run) -> None:
    run.s.kill("worker1")
    await run.count_in_flight()
    await asyncio.sleep(2)
    run.s.start("worker1")


async def kill_pump(run: Run) -> None:
    run.s.kill("pump")
    await asyncio.sleep(PUMP_DOWN_S)
    run.s.start("pump")


async def kill_api(run: Run) -> None:
    """While alerts are posted (the agency retries with its Idempotency-Key) and webhooks arrive."""
    run.s.kill("api")
    extra = {**ALERT, "audience": {"residents": run.rids[:1]}, "event": "Flood update"}
    refused = 0
    for _ in range(10):
        try:
            async with run.http.post(f"{run.s.api}/v1/alerts", json=extra,
                                     headers={**run.auth, "Idempotency-Key": "k1"}):
                pass
        except aiohttp.ClientError:
            refused += 1
        await asyncio.sleep(0.5)
    run.s.start("api")
    ids = set()
    for _ in range(2):
        async with run.http.post(f"{run.s.api}/v1/alerts", json=extra,
                                 headers={**run.auth, "Idempotency-Key": "k1"}) as r:
            ids.add((await r.json())["id"] if r.status == 202 else r.status)
    run.notes.append(f"posts refused while the API was down: {refused}; after it: one alert ({ids})")


async def kill_simulator(run: Run) -> None:
    run.records_before = await run.s.simulator_records(run.http)
    run.s.kill("simulator")
    await run.count_in_flight()
    await asyncio.sleep(3)
    run.s.start("simulator")
    await run.s.teach_simulator(run.http, run.behaviours)


async def redis_sigkill_restart(run: Run) -> None:
    await run.count_in_flight()
    run.s.kill("redis")
    await asyncio.sleep(2)
    run.s.start("redis")


async def redis_unreachable_30s(run: Run) -> None:
    await run.count_in_flight()
    run.s.pause("redis")
    await asyncio.sleep(REDIS_UNREACHABLE_S)
    run.s.resume("redis")


async def broker_restart(run: Run) -> None:
    run.s.terminate("broker")
    await asyncio.sleep(3)
    run.s.start("broker")


async def clock_off(run: Run) -> None:
    """The clock is off for the whole run: the fault is already there."""


@dataclass
class Fault:
    run: object
    broker: str = "redis"
    clock_offsets: dict = field(default_factory=dict)


FAULTS = {
    "worker": Fault(kill_worker),
    "pump": Fault(kill_pump),
    "api": Fault(kill_api),
    "simulator": Fault(kill_simulator),
    "redis-restart": Fault(redis_sigkill_restart),
    "redis-unreachable": Fault(redis_unreachable_30s),
    "broker-redis": Fault(broker_restart),
    "broker-rabbitmq": Fault(broker_restart, broker="amqp"),
    "clock-pump": Fault(clock_off, clock_offsets={"pump": 30}),
    "clock-worker": Fault(clock_off, clock_offsets={"worker1": -30}),
}
TITLES = {
    "worker": "kill -9 worker", "pump": f"kill -9 pump, {PUMP_DOWN_S} s down", "api": "kill -9 API (posting, webhooks)",
    "simulator": "kill -9 simulator, restart", "redis-restart": "Redis SIGKILL, restart from AOF",
    "redis-unreachable": f"Redis unreachable {REDIS_UNREACHABLE_S} s (SIGSTOP)", "broker-redis": "Redis broker restart",
    "broker-rabbitmq": "RabbitMQ broker restart", "clock-pump": "pump clock +30 s (libfaketime)",
    "clock-worker": "one worker's clock -30 s (libfaketime)",
}


def one(name: str, residents: int, root: Path) -> tuple[dict, list[str]]:
    fault = FAULTS[name]
    with ProcessStack(root / name, broker=fault.broker, clock_offsets=fault.clock_offsets) as stack:
        run = asyncio.run(Run(stack, residents)(fault.run))
    return row(TITLES[name], residents, run.lost, run.duplicated, run.watch.max_lag_s, run.watch.recovery_s), run.notes


def storm_rows(residents: int) -> list[dict]:
    """Provider storms, from bench/chaos_storms.py (issue 12's other half) when it is there."""
    path = Path(__file__).with_name("chaos_storms.py")
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("chaos_storms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rows(residents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--only", choices=[*FAULTS, "storms"], action="append",
                        help="run only this fault (repeatable)")
    args = parser.parse_args()
    names = [n for n in FAULTS if not args.only or n in args.only]
    rows, notes = [], {}
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        for name in names:
            title = TITLES[name]
            console.print(f"[bold]{title}[/] ...")
            try:
                result, notes[title] = one(name, args.residents, Path(tmp))
            except Exception as e:  # noqa: BLE001 - one fault's stack failing is a finding, not the end of the run
                console.print_exception()
                notes[title] = [f"did not run: {e}"]
                continue
            rows.append(result)
            console.print(result, *notes[title], sep="\n  ")
    if not args.only or "storms" in args.only:
        rows += storm_rows(args.residents)
    console.print(table(rows))
    for fault, lines in notes.items():
        console.print(f"[bold]{fault}[/]", *lines, sep="\n  ")


if __name__ == "__main__":
    main()
