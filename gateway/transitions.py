"""Every state change in Redis, as Lua scripts behind typed functions.

- `transitions.lua`: alerts and their deliveries, the state machine.  Its
  batch ops take many deliveries of one alert, a few dozen per script call,
  queued on the caller's pipeline, so a batch costs one round trip.
- `transitions/residents.lua`: a resident's hash, never reviving an erased one.
- `transitions/leases.lua`: the pump's lead, the mail batcher's lock, due timers.
- `transitions/pacing.lua`, `transitions/routing.lua`: provider pace buckets
  and traffic split, shared by every worker.

This module alone loads and calls them: each is sent as EVALSHA, loaded
again if Redis answers NOSCRIPT (redis-py's script object; a pipeline does
the same in gateway/store.py).  Read-only reads stay plain commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson
from redis.commands.core import AsyncScript

from . import keys

HERE = Path(__file__).parent
LUA = (HERE / "transitions.lua").read_text()
# transitions.lua's rank of `delivered`: at or above it an attempt has its receipt.
RANK_DELIVERED = 4
TERMINAL = frozenset({"confirmed", "unreachable", "cancelled", "expired", "opted_out"})
STATES = ("planned", "in_progress", "confirmed", "unreachable", "cancelled", "expired", "opted_out")
# A claimed send that has not reported back in this long is taken over.
CLAIM_LEASE_MS = 30_000
# Deliveries per call of a batch op (Transitions._queue).
LUA_CHUNK = 50


def now_ms() -> int:
    """This process's clock: for records and caches. Timers are set and judged by
    Redis's clock (transitions.lua, the pump's `due`), so a process whose clock
    is off fires none early."""
    return int(time.time() * 1000)


class Lua:
    """One script, bound to no client: its SHA is worked out once, at import."""

    def __init__(self, source: str):
        self.script = AsyncScript(None, source.encode())

    def queue(self, pipe, keys_: list[str], args: list) -> None:
        """Queues the call on `pipe`, which loads the script if Redis lacks it."""
        pipe.scripts.add(self.script)
        pipe.evalsha(self.script.sha, len(keys_), *keys_, *args)

    async def __call__(self, client, keys_: list[str], args: list):
        return await self.script(keys=keys_, args=args, client=client)


STATE_MACHINE = Lua(LUA)
RESIDENTS, LEASES, PACING, ROUTING = (Lua((HERE / "transitions" / f"{name}.lua").read_text())
                                      for name in ("residents", "leases", "pacing", "routing"))


class Transitions:
    def __init__(self, redis):
        self.redis = redis
        self.script = STATE_MACHINE.script

    async def _run(self, aid: str, args: list, client=None, more_keys: tuple[str, ...] = ()):
        return await self.script(keys=[keys.alert(aid), *more_keys], args=args, client=client or self.redis)

    async def plan(self, aid: str, level: int, max_attempts: int, rows: Iterable[tuple[str, int, list, str]], *,
                   claim: bool = False) -> list[tuple[str, list]]:
        """rows: (resident id, sequence, plan steps, initial state).  With `claim`,
        the new `planned` deliveries are claimed for their first send at once:
        returns (resident id, legs of the first step) of each so claimed."""
        rows = list(rows)
        # Residents planned alike share one list of steps: encoded once.
        encoded: dict[int, bytes] = {}
        for _, _, steps, _ in rows:
            if id(steps) not in encoded:
                encoded[id(steps)] = orjson.dumps(steps)
        pipe = self.redis.pipeline(transaction=False)
        queued = await self._queue(pipe, aid, ["plan", level, max_attempts, CLAIM_LEASE_MS if claim else 0],
                                   [[rid, seq, encoded[id(steps)], state] for rid, seq, steps, state in rows])
        results = await pipe.execute()
        claimed = [text(rid) for _, rids in results[queued.start:queued.end] for rid in rids]
        if not claimed:
            return []
        first_legs = {rid: steps[0]["l"] for rid, _, steps, _ in rows if steps}
        return [(rid, first_legs[rid]) for rid in claimed]

    # The methods below queue calls for many deliveries of one alert onto a
    # pipeline; after it runs, `Replies.of(results)` gives a reply per delivery.
    async def claim(self, pipe, aid: str, items: Iterable[tuple[str, int, int]],
                    lease_ms: int = CLAIM_LEASE_MS) -> "Replies":
        """items: (resident id, step, attempt). Reply per item: [b"ok", legs JSON] or [b"skip"] or [state]."""
        return await self._queue(pipe, aid, ["claim", lease_ms], [[rid, k, n] for rid, k, n in items])

    async def renew(self, pipe, aid: str, items: Iterable[tuple[str, int, int]],
                    lease_ms: int = CLAIM_LEASE_MS) -> "Replies":
        """items: (resident id, step, attempt) still being sent. Reply per item: 1 if its
        claim now runs `lease_ms` from now, 0 if it is not that attempt's any more."""
        return await self._queue(pipe, aid, ["renew", lease_ms], [[rid, k, n] for rid, k, n in items])

    async def event(self, pipe, aid: str, events: Iterable["Event"], lease_ms: int = CLAIM_LEASE_MS) -> "Replies":
        """Reply per event: the delivery's state or `next:<step>` (send it now; a timer
        sends it after `lease_ms` if nobody has claimed it by then), `retry`, `late`, `noop`."""
        now = now_ms()
        return await self._queue(pipe, aid, ["event", lease_ms], [
            [e.rid, e.k, e.n, e.leg, e.status, int(e.permanent), e.provider, e.ref or "", e.code or "",
             e.at_ms or now, e.channel, e.backoff_ms, e.hold_ms] for e in events])

    async def timer(self, pipe, aid: str, members: Iterable[str]) -> "Replies":
        """A step a timer says to send is claimed in the same call: its reply is
        [b"ok", legs JSON, step, attempt]; else the state or b"noop"."""
        return await self._queue(pipe, aid, ["timer", CLAIM_LEASE_MS], [[m] for m in members])

    async def reopen(self, pipe, aid: str, items: Iterable[tuple[str, list]], who: str) -> "Replies":
        """items: (resident id, steps to append).  Reply per item: b"reopened:<step>",
        b"noop" (not unreachable: reopened already, or reached) or b"closed" (the alert ended)."""
        return await self._queue(pipe, aid, ["reopen", CLAIM_LEASE_MS, who, aid],
                                 [[rid, orjson.dumps(steps)] for rid, steps in items],
                                 more_keys=(keys.ACTIVE_ALERTS, keys.CALLBACK_ALERTS))

    async def close(self, pipe, aid: str, rids: Iterable[str], state: str) -> "Replies":
        return await self._queue(pipe, aid, ["close", state], [[rid] for rid in rids])

    # Alerts: one call each, answered at once. ------------------------------

    async def create_alert(self, aid: str, agency_id: str, doc: bytes, digest: str, *, expires_ms: int,
                           idempotency_key: str, idempotency_ttl_s: int, cap_field: str, cap: bytes | str,
                           callbacks: bool, drill: str) -> str:
        """Stores a new alert (status planning); or, if the idempotency key or
        the CAP message (`cap_field`) was used before, returns the
        "aid|digest" it became and stores nothing.  "" means stored."""
        prior = await self._run(aid, [
            "alert_create", aid, digest, doc, agency_id, now_ms(), expires_ms, idempotency_ttl_s, cap_field, cap,
            int(callbacks), drill],
            more_keys=(keys.cap_index(agency_id) if cap_field else "", idempotency_key, keys.ALERTS,
                       keys.agency_alerts(agency_id), keys.ACTIVE_ALERTS, keys.CALLBACK_ALERTS))
        return text(prior)

    async def update_alert(self, aid: str, doc: bytes, expires_ms: int, *, agency_id: str, cap_field: str,
                           cap: bytes | str, digest: str) -> tuple[str, str]:
        """("ok", new version) | ("prior", "aid|digest") | ("missing", "") | ("closed", status)."""
        res = await self._run(aid, ["alert_update", doc, expires_ms, now_ms(), cap, cap_field, f"{aid}|{digest}"],
                              more_keys=(keys.cap_index(agency_id) if cap_field else "",))
        return text(res[0]), text(res[1])

    async def cancel_alert(self, aid: str, *, agency_id: str = "", cap_field: str = "", cap: bytes | str = "",
                           digest: str = "") -> tuple[str, str]:
        """("cancelled", status before) | ("unchanged", status) | ("prior", "aid|digest") | ("missing", "")."""
        res = await self._run(aid, ["alert_cancel", now_ms(), cap_field, f"{aid}|{digest}", cap],
                              more_keys=(keys.cap_index(agency_id) if cap_field else "",))
        return text(res[0]), text(res[1])

    async def refresh_round(self, round_id: str, doc: bytes | str, expires_ms: int) -> bool:
        """An update round still running takes its alert's new content; False if it ended."""
        return bool(await self._run(round_id, ["round_update", doc, expires_ms]))

    async def grow_alert(self, aid: str, targeted: int) -> None:
        """An update added residents: `targeted` counts them, and a finished alert runs again."""
        await self._run(aid, ["alert_grow", aid, targeted], more_keys=(keys.ACTIVE_ALERTS, keys.CALLBACK_ALERTS))

    async def queue_summary(self, aid: str, kind: str, summary: bytes) -> bool:
        """The alert's `progress` (while it runs) or `final` summary (once, after it ended),
        queued for the agency behind its delivery events; False if not its time."""
        return bool(await self._run(aid, ["summary", kind, summary, now_ms(), aid], more_keys=(keys.ACTIVE_ALERTS,)))

    async def activate_alert(self, aid: str, targeted: int | None, *from_states: str) -> bool:
        """To active, only from one of `from_states`: a cancel that came in between wins."""
        return bool(await self._run(aid, ["alert_activate", "" if targeted is None else targeted, *from_states]))

    async def start_round(self, round_id: str, parent: str, doc: bytes | str, agency_id: str, *, expires_ms: int,
                          callbacks: bool, residents: int) -> bool:
        """Creates the update round `round_id` of `parent`, active at once; False if it exists."""
        return bool(await self._run(round_id, [
            "alert_round", round_id, doc, agency_id, parent, now_ms(), expires_ms, int(callbacks), residents],
            more_keys=(keys.alert_rounds(parent), keys.ACTIVE_ALERTS, keys.CALLBACK_ALERTS)))

    async def end_alert(self, aid: str, status: str) -> bool:
        """A running alert ends (done, expired); False if it had ended (cancelled) meanwhile."""
        return bool(await self._run(aid, ["alert_end", status, now_ms()]))

    async def _queue(self, pipe, aid: str, head: list, items: list[list], more_keys: tuple[str, ...] = ()
                     ) -> "Replies":
        # A few dozen deliveries a call: Redis serves other clients (the API
        # accepting an alert) between calls, not after a whole batch.
        start = len(pipe)
        for i in range(0, len(items), LUA_CHUNK):
            args = list(head)
            for item in items[i:i + LUA_CHUNK]:
                args += item
            await self._run(aid, args, pipe, more_keys)
        return Replies(start, len(pipe))


@dataclass(slots=True)
class Replies:
    """Where one batch op's calls sit in a pipeline's results."""

    start: int
    end: int

    def of(self, results: list) -> list:
        return [reply for call in results[self.start:self.end] for reply in call]


@dataclass(slots=True)
class Event:
    """What a provider (or the resident) said about one leg of an attempt."""

    rid: str
    k: int
    n: int
    leg: int
    status: str
    permanent: bool
    provider: str
    ref: str | None
    code: str | None
    channel: str
    backoff_ms: int = 0
    at_ms: int | None = None
    # How long an attempt this status shows in progress (a call answered) holds its step's deadline off.
    hold_ms: int = 0


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Residents -------------------------------------------------------------------


def remember_reply(pipe, rid: str, ref: str) -> None:
    """Queues: the resident's next SMS reply answers `ref`, unless the resident was erased."""
    RESIDENTS.queue(pipe, [keys.resident(rid)], ["remember", keys.REPLY_TARGET, ref])


def reseal(pipe, rid: str, read: bytes, fresh: bytes) -> None:
    """Queues: the contact data sealed again, if it is still what was read (reply 1, else 0)."""
    RESIDENTS.queue(pipe, [keys.resident(rid)], ["reseal", read, fresh])


def contact_confirmed(pipe, rid: str, index: int, at_ms: int) -> None:
    """Queues: contact point `index` of the resident confirmed at `at_ms`."""
    RESIDENTS.queue(pipe, [keys.resident(rid)], ["contact_confirmed", index, at_ms])


async def dead_contact(redis, rid: str, index: int) -> bool:
    """Marks a contact point that cannot work again; False if marked before or the resident is gone."""
    return bool(await RESIDENTS(redis, [keys.resident(rid)], ["dead_contact", str(index)]))


async def set_consent(redis, rid: str, allowed: bool) -> bool:
    """Consent to non-emergency alerts; False if the resident is gone."""
    return bool(await RESIDENTS(redis, [keys.resident(rid)], ["consent", "true" if allowed else "false"]))


# Leases ----------------------------------------------------------------------


async def lead(redis, lease: str, holder: str, ms: int) -> bool:
    """Takes the lease or keeps it for another `ms`; only the holder renews."""
    return bool(await LEASES(redis, [lease], ["lead", holder, ms]))


async def release(redis, lease: str, holder: str) -> bool:
    return bool(await LEASES(redis, [lease], ["release", holder]))


def due_timers(pipe, aid: str, limit: int, lease_ms: int) -> None:
    """Queues: the alert's due timers by Redis's clock, each pushed `lease_ms`
    ahead; replies [members, score of the next one or None]."""
    LEASES.queue(pipe, [keys.alert_timers(aid)], ["due", limit, lease_ms])


# Providers -------------------------------------------------------------------


def reserve(pipe, buckets: list[str], count: int, spacing: list) -> None:
    """Queues: `count` send slots in every one of `buckets` (GCRA, by Redis's clock);
    `spacing` is each bucket's interval and tolerance, ms.  Replies the ms to wait per send."""
    PACING.queue(pipe, buckets, [count, *spacing])


async def publish_split(redis, split_key: str, switches_key: str, read: str, state: str, shares: bytes,
                        switch: bytes, at_ms: int, kept: int) -> bool:
    """The channel's new traffic split, unless another process moved it since `read`."""
    return bool(await ROUTING(redis, [split_key, switches_key], [read, state, shares, switch, at_ms, kept]))
