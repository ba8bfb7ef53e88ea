"""Reading an alert's deliveries: who is in which state, each one's history.

Kept small in Redis because an alert may reach millions: every delivery has
a sequence number in its alert; a bitmap per state marks the sequence
numbers in that state, and blocks of 128 map a sequence number back to the
resident (`transitions.lua` writes both).  A delivery's history is a field
of its hash, one line per event: `at_ms|step|attempt|leg|status|provider|ref|code`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np
import orjson

from . import keys
from .transitions import STATES, text

BLOCK = 128  # residents per sequence block; small enough for a listpack hash


def seqs_in(bitmap: bytes | None) -> np.ndarray:
    """Sequence numbers whose bit is set (Redis bitmaps are big-endian per byte)."""
    if not bitmap:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8)))


async def residents_of(redis, aid: str, seqs: Iterable[int]) -> dict[int, str]:
    """Sequence number -> resident id."""
    by_block: dict[int, list[int]] = defaultdict(list)
    for seq in seqs:
        by_block[int(seq) // BLOCK].append(int(seq))
    pipe = redis.pipeline(transaction=False)
    for block, members in by_block.items():
        pipe.hmget(keys.alert_block(aid, block), [s % BLOCK for s in members])
    out = {}
    for (block, members), rids in zip(by_block.items(), await pipe.execute()):
        for seq, rid in zip(members, rids):
            if rid is not None:
                out[seq] = text(rid)
    return out


async def in_states(redis, aid: str, states: Iterable[str]) -> dict[str, list[str]]:
    """Every resident in each state, in sequence order."""
    states = list(states)
    pipe = redis.pipeline(transaction=False)
    for state in states:
        pipe.get(keys.alert_bits(aid, state))
    found = {state: seqs_in(bitmap) for state, bitmap in zip(states, await pipe.execute())}
    rids = await residents_of(redis, aid, np.concatenate(list(found.values())) if found else [])
    return {state: [rids[int(s)] for s in seqs if int(s) in rids] for state, seqs in found.items()}


async def residents_in(redis, aid: str, state: str) -> list[str]:
    return (await in_states(redis, aid, [state]))[state]


async def page(redis, aid: str, states: Iterable[str] = STATES, after: int = -1, limit: int = 100
               ) -> list[tuple[int, str, str]]:
    """(sequence, resident, state) after `after`, in sequence order: a page
    stays stable while deliveries change state."""
    states = list(states)
    pipe = redis.pipeline(transaction=False)
    for state in states:
        pipe.get(keys.alert_bits(aid, state))
    rows = []
    for state, bitmap in zip(states, await pipe.execute()):
        seqs = seqs_in(bitmap)
        rows.extend((int(s), state) for s in seqs[seqs > after][:limit])
    rows = sorted(rows)[:limit]
    rids = await residents_of(redis, aid, [s for s, _ in rows])
    return [(seq, rids[seq], state) for seq, state in rows if seq in rids]


async def last_seq(redis, aid: str) -> int:
    """The highest sequence number planned in the alert, -1 for none."""
    return int(await redis.hget(keys.alert(aid), "last_seq") or -1)


async def spread(redis, aid: str, at_most: int) -> tuple[list[str], int]:
    """At most `at_most` residents spread evenly over the alert's sequence
    numbers, and how many deliveries it has: a sample that costs the same at a
    thousand residents or a million, and holds the same residents from one
    read to the next."""
    count = await last_seq(redis, aid) + 1
    step = max(1, -(-count // max(1, at_most)))
    return list((await residents_of(redis, aid, range(0, count, step))).values()), count


def queue_history(pipe, aid: str, rid: str) -> None:
    pipe.hget(keys.delivery(aid, rid), "h")


def history_lines(raw: bytes | str | None) -> list[str]:
    return [line for line in text(raw).split("\n") if line] if raw else []


# What settles one leg of an attempt: after these there is no receipt to wait for.
RECEIPTS = frozenset({"posted", "delivered", "acknowledged", "failed"})


def awaiting_receipt(lines: list[str], k: int, n: int) -> list[tuple[int, str, str]]:
    """(leg, provider, provider ref) of each leg of attempt k.n that a provider
    accepted but never settled: its receipt is late or was lost."""
    accepted: dict[int, tuple[str, str]] = {}
    settled: set[int] = set()
    for line in lines:
        _, step, attempt, leg, status, provider, ref, _ = line.split("|", 7)
        if leg == "*" or int(step) != k or int(attempt) != n:
            continue
        if status in RECEIPTS:
            settled.add(int(leg))
        elif provider and ref:
            accepted[int(leg)] = (provider, ref)
    return [(leg, provider, ref) for leg, (provider, ref) in sorted(accepted.items()) if leg not in settled]


async def history(redis, aid: str, rid: str) -> list[str]:
    return history_lines(await redis.hget(keys.delivery(aid, rid), "h"))


def delivery_view(rid: str, d: dict, history: list[str]) -> dict:
    plan = orjson.loads(d["p"])
    attempts: dict[tuple, dict] = {}
    for line in history:
        at, k, n, leg, status, provider, ref, code = line.split("|", 7)
        k, n = int(k), int(n)
        legs = plan[k]["l"] if k < len(plan) else []
        targets = range(len(legs)) if leg == "*" else [int(leg)]
        for li in targets:
            a = attempts.setdefault((k, n, li), {"step": k, "attempt": n, "channel": legs[li][0] if legs else "",
                                                 "provider": "", "provider_ref": "", "statuses": []})
            a["provider"] = provider or a["provider"]
            a["provider_ref"] = ref or a["provider_ref"]
            entry = {"status": status, "at_ms": int(at)}
            if code:
                entry["error_code"] = code
            a["statuses"].append(entry)
    out = {
        "resident": rid,
        "state": d["s"],
        "step": int(d["k"]),
        "plan": [{"channels": [leg[0] for leg in s["l"]], "timeout_s": s["t"]} for s in plan],
        "attempts": [attempts[key] for key in sorted(attempts)],
    }
    if "y" in d:
        channel, level = d["y"].split(":")
        out["confirmed_by"] = {"channel": channel, "level": level}
    if d["s"] == "unreachable":
        out["reasons"] = unreachable_reasons(plan, out["attempts"])
    return out


RANK = {"claimed": 0, "queued": 1, "sent": 2, "posted": 3, "delivered": 4, "acknowledged": 5}


def unreachable_reasons(plan: list, attempts: list[dict]) -> list[dict]:
    """Per step: the strongest proof it got, and how its last attempt ended."""
    if not plan:
        return [{"step": None, "reason": "no contact point any allowed channel can use"}]
    out = []
    for k, step in enumerate(plan):
        tried = [a for a in attempts if a["step"] == k]
        if not tried:
            out.append({"step": k, "channel": step["l"][0][0], "reason": "not tried"})
            continue
        statuses = [s for a in tried for s in a["statuses"]]
        best = max((s["status"] for s in statuses if s["status"] in RANK), key=RANK.get, default="claimed")
        final = statuses[-1]
        ending = final["status"] + (f" ({final['error_code']})" if final.get("error_code") else "")
        reason = f"{best}, not acknowledged" if best == "delivered" else ending
        count = len({a["attempt"] for a in tried})
        if count > 1:
            reason += f" after {count} attempts"
        out.append({"step": k, "channel": ",".join(sorted({a["channel"] for a in tried})), "reason": reason})
    return out
