"""One row of the chaos table: what bench/chaos.py and bench/chaos_storms.py
both print, so the two agree on names and units."""

from __future__ import annotations

from rich.table import Table

# (key, column heading): every row is a dict with exactly these keys.
COLUMNS = (
    ("fault", "fault"),
    ("residents", "residents"),
    ("lost", "lost"),
    ("duplicated", "duplicated sends"),
    ("max_lag_s", "max escalation lag during the fault (s)"),
    ("recovery_s", "recovery (s)"),
)
KEYS = tuple(key for key, _ in COLUMNS)


def row(fault: str, residents: int, lost: int, duplicated: int, max_lag_s: float, recovery_s: float) -> dict:
    return {"fault": fault, "residents": residents, "lost": lost, "duplicated": duplicated,
            "max_lag_s": round(max_lag_s, 1), "recovery_s": round(recovery_s, 1)}


def table(rows: list[dict]) -> Table:
    t = Table(title="Reliability under faults")
    for key, heading in COLUMNS:
        t.add_column(heading, justify="left" if key == "fault" else "right")
    for r in rows:
        t.add_row(*(str(r[key]) for key in KEYS))
    return t
