"""The unreached list: who has not confirmed yet, by name, why, and what happens next.

Names are opened from the registry only for the rows shown or exported.
Residents who live alone and stay unreached need a human: a welfare visit.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import orjson

from .. import deliveries, keys
from ..deliveries import delivery_view, unreachable_reasons
from ..registry import decode
from ..transitions import text
from .html import clock
from .outcomes import label

# Most urgent first: nothing more will be tried for the unreachable.
OPEN_STATES = ("unreachable", "in_progress", "planned")
CSV_COLUMNS = ["resident", "name", "district", "state", "lives_alone", "needs", "why", "next", "deadline",
               "welfare_visit"]


@dataclass
class Row:
    rid: str
    state: str
    name: str = ""
    district: str = ""
    needs: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    next: str = ""
    deadline_ms: int = 0
    # {"by", "at_ms", "note"} once an operator recorded the visit.
    welfare: dict | None = None

    @property
    def lives_alone(self) -> bool:
        return "lives_alone" in self.needs


async def open_rids(redis, aid: str) -> list[str]:
    return [rid for page in (await deliveries.in_states(redis, aid, OPEN_STATES)).values() for rid in page]


async def rows(redis, vault, aid: str, rids: list[str]) -> list[Row]:
    if not rids:
        return []
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hgetall(keys.delivery(aid, rid))
        pipe.hgetall(keys.resident(rid))
    pipe.hmget(keys.welfare(aid), *rids)
    res = await pipe.execute()
    welfare = res[-1]
    out = []
    for i, rid in enumerate(rids):
        d = {text(k): text(v) for k, v in res[2 * i].items()}
        if not d:
            continue
        row = describe(rid, d, deliveries.history_lines(d.get("h")))
        fields = res[2 * i + 1]
        resident = decode(rid, fields, vault) if fields else None
        if resident:
            row.name, row.district = resident.get("name", ""), resident["district"]
            row.needs = resident.get("needs", [])
        else:
            row.name = "(erased from the registry)"
        if welfare[i]:
            row.welfare = orjson.loads(welfare[i])
        out.append(row)
    return out


def describe(rid: str, d: dict, history: list[str]) -> Row:
    """Why a delivery is not confirmed, and what the engine does next."""
    view = delivery_view(rid, d, history)
    plan = orjson.loads(d["p"])
    state, k = d["s"], int(d["k"])
    row = Row(rid, state)
    done = unreachable_reasons(plan, view["attempts"])
    if state != "unreachable":
        done = [r for r in done if r["step"] is not None and r["step"] < k]
    row.why = [r["reason"] if r["step"] is None else f"step {r['step'] + 1} {r['channel']}: {r['reason']}"
               for r in done]
    if state == "planned":
        row.next = f"first send on {label(plan[0])}"
    elif state == "in_progress":
        after = f"then {label(plan[k + 1])}" if k + 1 < len(plan) else "then unreachable"
        row.next = f"step {k + 1} of {len(plan)} on {label(plan[k])}, {after}"
        row.deadline_ms = int(d.get("d") or 0)
    else:
        row.next = "nothing more is planned: an operator reopens it on another channel or follows up"
    return row


def to_csv_lines(rows: list[Row], header: bool) -> str:
    buf = io.StringIO()
    out = csv.writer(buf)
    if header:
        out.writerow(CSV_COLUMNS)
    for r in rows:
        visit = ""
        if r.welfare:
            visit = f"{r.welfare['by']} {clock(r.welfare['at_ms'])} {r.welfare.get('note', '')}".strip()
        out.writerow([_cell(x) for x in (r.rid, r.name, r.district, r.state, "yes" if r.lives_alone else "",
                                         ";".join(r.needs), " / ".join(r.why), r.next, clock(r.deadline_ms),
                                         visit)])
    return buf.getvalue()


def _cell(value: str) -> str:
    """A name like `=HYPERLINK(...)` must not become a formula in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
