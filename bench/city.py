"""How long the virtual city takes to generate, and the mix it came out with.

    .venv/bin/python -m bench.city [--residents 100000] [--seed 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from simulator.city import BANDS, YEAR, generate

HANDSETS = ("smartphone", "feature_phone", "landline", None)


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _by_age(residents: list[dict]) -> Table:
    table = Table(title="Phones by age band (share of the band)")
    for column in ("age", "people", "smartphone", "feature phone", "landline only", "no phone", "app or web push"):
        table.add_column(column, justify="right")
    for band in BANDS:
        people = [r for r in residents if band.low <= YEAR - r["birth_year"] <= band.high]
        phones = Counter(next((c["handset"] for c in r["contacts"] if c["type"] == "phone"), None) for r in people)
        pushable = sum(any(c["type"] in ("fcm", "webpush") for c in r["contacts"]) for r in people)
        table.add_row(f"{band.low}-{band.high}", str(len(people)),
                      *(_share(phones[h], len(people)) for h in HANDSETS), _share(pushable, len(people)))
    return table


def _counts(title: str, counter: Counter, total: int) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("residents", justify="right")
    table.add_column("share", justify="right")
    for value, count in counter.most_common():
        table.add_row(str(value), str(count), _share(count, total))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="city-"))
    console = Console()

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=args.residents)
        started = time.perf_counter()
        files = generate(args.residents, args.seed, out,
                         on_progress=lambda done, total: progress.update(task, completed=done))
        elapsed = time.perf_counter() - started
    size = (files.residents.stat().st_size + files.behaviour.stat().st_size) / 1e6
    console.print(f"{files.count} residents in {elapsed:.2f} s ({files.count / elapsed:,.0f}/s), "
                  f"{size:.0f} MB, in {out}")

    residents = [orjson.loads(line) for line in files.residents.read_bytes().splitlines()]
    acts = [orjson.loads(line) for line in files.behaviour.read_bytes().splitlines()]
    n = len(residents)
    console.print(_by_age(residents))
    kinds = Counter(kind for r in residents for kind in {c["type"] for c in r["contacts"]} or {"none"})
    console.print(_counts("Contact points", kinds, n))
    console.print(_counts("Needs", Counter(need for r in residents for need in r["needs"]), n))
    console.print(_counts("First language", Counter(r["languages"][0] for r in residents), n))
    console.print(_counts("Behaviour (of all residents, whatever their channels)", Counter(
        label for a in acts for label, hit in (
            (f"sms {a['sms']['outcome']} {a['sms']['error_code'] or ''}".strip(), True),
            ("sms reply", a["sms"]["reply"] is not None),
            (f"voice {a['voice']['answer']}", True),
            ("push token stale", a["push"]["token_state"] == "stale"),
            ("push acknowledged", a["push"]["ack"]),
            (f"mail {a['mail']['outcome']}", True),
        ) if hit
    ), n))


if __name__ == "__main__":
    main()
