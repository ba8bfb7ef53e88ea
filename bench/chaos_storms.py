"""Provider storms during a live alert, and what they cost: the storm rows of
issue 12's chaos table (bench/chaos.py appends them to its own).

    .venv/bin/python bench/chaos_storms.py --residents 10000
    .venv/bin/python bench/chaos_storms.py --only twilio-500 --residents 2000 --storm-s 20

The gateway runs as the e2e tests run it (tests/e2e: an embedded redis-server,
a Celery worker process, the API and pump in this process, the provider
simulator on loopback), one stack for all storms and a fresh city for each.
Each storm is switched on through the simulator's control endpoint as the
alert's first sends reach the provider, lasts --storm-s seconds, and is judged
by tests/e2e/stormkit.py: lost (not in exactly one terminal state), duplicated
sends (to be at most what was in flight), the timers' worst lag during the
storm and the seconds to recover after it.  Below the table, per storm: the
residents' states, contacts after confirming, calls to residents whose text
had arrived, and what /metrics and the console showed while it lasted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from chaos_table import row, table  # noqa: E402
from stackkit import start_stack, stop_stack  # noqa: E402
from stormkit import BY_NAME, StormRun  # noqa: E402
# The e2e tests' city (simulator, API, agency) as their fixture opens it.
from wholestack import open_city  # noqa: E402

STORM_S = 60
SETTLE_TIMEOUT_S = 600
console = Console()


def rows(residents: int, names: list[str] | None = None, storm_s: float = STORM_S,
         notes: dict[str, list[str]] | None = None) -> list[dict]:
    """One chaos-table row per storm (every storm unless `names`); `notes` collects what lies behind each."""
    with tempfile.TemporaryDirectory(prefix="storms-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            return asyncio.run(_storms(stack, residents, names or list(BY_NAME), storm_s, notes))
        finally:
            stop_stack(stack)


async def _storms(stack, residents: int, names: list[str], storm_s: float, notes: dict | None) -> list[dict]:
    out = []
    for name in names:
        console.print(f"[bold]{BY_NAME[name].title}[/] ...")
        async with open_city(stack) as city:
            v = await StormRun(city, BY_NAME[name], residents, storm_s)(SETTLE_TIMEOUT_S)
        out.append(row(v.storm, residents, v.lost, v.duplicated, v.max_lag_s, v.recovery_s))
        console.print(out[-1], *v.notes(), sep="\n  ")
        if notes is not None:
            notes[v.storm] = v.notes()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--storm-s", type=float, default=STORM_S, help="how long each storm lasts")
    parser.add_argument("--only", choices=list(BY_NAME), action="append", help="run only this storm (repeatable)")
    args = parser.parse_args()
    notes: dict[str, list[str]] = {}
    result = rows(args.residents, args.only, args.storm_s, notes)
    console.print(table(result))
    for storm, lines in notes.items():
        console.print(f"[bold]{storm}[/]", *lines, sep="\n  ")


if __name__ == "__main__":
    main()
