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

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from chaos_table import row, table  # noqa: E402
from fault_drill import (  # noqa: E402
    PUMP_DOWN_S,
    REDIS_UNREACHABLE_S,
    Run,
    broker_restart,
    clock_off,
    kill_api,
    kill_pump,
    kill_simulator,
    kill_worker,
    redis_link_down,
    redis_sigkill_restart,
    redis_unreachable,
)
from process_stack import ProcessStack  # noqa: E402

console = Console(width=150)

@dataclass
class Fault:
    run: object
    broker: str = "redis"
    clock_offsets: dict = field(default_factory=dict)
    # Redis on a host of its own, so that its link can go down (root: network namespaces).
    redis_apart: bool = False


FAULTS = {
    "worker": Fault(kill_worker),
    "pump": Fault(kill_pump),
    "api": Fault(kill_api),
    "simulator": Fault(kill_simulator),
    "redis-restart": Fault(redis_sigkill_restart),
    "redis-unreachable": Fault(redis_unreachable),
    "redis-link-down": Fault(redis_link_down, redis_apart=True),
    "broker-redis": Fault(broker_restart),
    "broker-rabbitmq": Fault(broker_restart, broker="amqp"),
    "clock-pump": Fault(clock_off, clock_offsets={"pump": 30}),
    "clock-worker": Fault(clock_off, clock_offsets={"worker1": -30}),
}
TITLES = {
    "worker": "kill -9 worker", "pump": f"kill -9 pump, {PUMP_DOWN_S} s down", "api": "kill -9 API (posting, webhooks)",
    "simulator": "kill -9 simulator, restart", "redis-restart": "Redis SIGKILL, restart from AOF",
    "redis-unreachable": f"Redis unreachable {REDIS_UNREACHABLE_S} s (SIGSTOP)",
    "redis-link-down": f"Redis unreachable {REDIS_UNREACHABLE_S} s (its link down)", "broker-redis": "Redis broker restart",
    "broker-rabbitmq": "RabbitMQ broker restart", "clock-pump": "pump clock +30 s (libfaketime)",
    "clock-worker": "one worker's clock -30 s (libfaketime)",
}


def one(name: str, residents: int, root: Path) -> tuple[dict, list[str]]:
    fault = FAULTS[name]
    with ProcessStack(root / name, broker=fault.broker, clock_offsets=fault.clock_offsets,
                      redis_apart=fault.redis_apart) as stack:
        run = asyncio.run(Run(stack, residents)(fault.run))
    return row(TITLES[name], residents, run.lost, run.duplicated, run.max_lag_s, run.watch.recovery_s), run.notes


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
