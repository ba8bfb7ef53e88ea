"""Provider storms during a live alert, and what they cost: the storm rows of
issue 12's chaos table (bench/chaos.py appends them to its own).

    .venv/bin/python bench/chaos_storms.py --residents 10000
    .venv/bin/python bench/chaos_storms.py --only twilio-500 --residents 2000 --storm-s 20

Each storm gets a fresh gateway run as a city runs it, every part its own
process (tests/e2e/process_stack.py: redis-server with AOF, a broker of its
own, `gateway api`, `gateway pump`, two `gateway worker`s, the provider
simulator), as bench/chaos.py runs its faults.  The storm is switched on
through the simulator's control endpoint as the alert's first sends reach
the provider, lasts --storm-s seconds, and is judged by tests/e2e/stormkit.py:
lost (not in exactly one terminal state), duplicated sends (to be at most
what was in flight), the timers' worst lag during the storm and the seconds
to recover after it.  Below the table, per storm: the residents' states,
contacts after confirming, calls to residents whose text had arrived, the
fewest idle connections of the API's Redis pool (its /metrics gauge), and
what /metrics and the console's provider page (signed in as an operator)
showed while it lasted.
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
from process_stack import ProcessStack  # noqa: E402
from stormkit import BY_NAME, StormRun  # noqa: E402

STORM_S = 60
SETTLE_TIMEOUT_S = 600
console = Console(width=150)


def rows(residents: int, names: list[str] | None = None, storm_s: float = STORM_S,
         notes: dict[str, list[str]] | None = None) -> list[dict]:
    """One chaos-table row per storm (every storm unless `names`); `notes` collects what lies behind each."""
    out = []
    with tempfile.TemporaryDirectory(prefix="storms-") as tmp:
        for name in names or list(BY_NAME):
            console.print(f"[bold]{BY_NAME[name].title}[/] ...")
            with ProcessStack(Path(tmp) / name) as stack:
                v = asyncio.run(StormRun(stack, BY_NAME[name], residents, storm_s)(SETTLE_TIMEOUT_S))
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
