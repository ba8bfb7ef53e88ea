"""An alert after it is posted: update, cancel, drills, and a first step that
waits for a resident's quiet hours.

- **Cancel** (CAP msgType Cancel, or `POST /v1/alerts/{id}/cancel`): the
  alert and its update rounds are marked cancelled, which the claim in
  transitions.lua reads, so no step starts after it; open deliveries are
  closed `cancelled` by the workers.
- **Update** (CAP msgType Update, or `POST /v1/alerts/{id}/update`): the new
  document replaces the old and the alert's `version` goes up, so pending
  steps send the new content (the engine refetches a changed version). Then,
  in a worker (`apply_update`): residents the new area adds are planned as
  usual; open deliveries of residents it no longer covers are cancelled; and
  everyone already confirmed is told again, by the channel that confirmed
  them, in an *update round*: a child alert (`parent` = the alert) whose
  plan for each resident is that one step. An update never changes the plan
  or confirmation level of deliveries already under way.
- **Drills**: CAP status Test and Exercise reach only residents who agreed to
  drills (`resolve_audience`); an Update may not turn a drill into an
  Actual alert or back.
- **Quiet hours**: when the severity table (gateway/fallback.py) says so (Minor), a resident in
  their quiet hours has their delivery planned but its first step put on a
  timer (the `rid|0|r|0` retry member of transitions.lua, scored by the end
  of the quiet hours) instead of being sent.

CAP messages are found again by (sender, identifier) in the agency's CAP
index (keys.cap_index); every message of one alert maps to the same alert id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from . import deliveries, keys
from .agencies import get_agency
from .alerts import (
    Alerts,
    body_digest,
    cap_field,
    cap_message,
    expires_ms,
    resolve_audience,
)
from .fallback import (
    Policy,
    build_plan,
    first_send_at_ms,
    initial_state,
    turn_of,
    update_round_step,
)
from .problems import Problem
from .registry import profile
from .transitions import STATES, Transitions, now_ms, text

OPEN = ("planned", "in_progress")


async def activate(redis, aid: str, targeted: int) -> bool:
    """The fan-out's move from planning to active (again, if a worker died in it)."""
    return await Transitions(redis).activate_alert(aid, targeted, "planning", "active")


def _not_found() -> Problem:
    return Problem(404, "Not found", "No such alert.")


class Lifecycle:
    def __init__(self, redis, dispatch=None):
        self.redis = redis
        self.dispatch = dispatch
        self.t = Transitions(redis)

    # Finding CAP messages -----------------------------------------------------

    async def find(self, agency_id: str, references: list[tuple[str, str, object]]) -> list[tuple[int, str | None]]:
        """For each (sender, identifier, sent) referenced: the alert it became, or None."""
        if not references:
            return []
        values = await self.redis.hmget(keys.cap_index(agency_id), [cap_field(s, i) for s, i, _ in references])
        found = []
        for n, v in enumerate(values):
            aid = text(v).split("|")[0] if v else None
            if aid is None:
                # A JSON alert as GET /v1/alerts/{id}.cap gave it: its identifier is its id.
                candidate = references[n][1].split(".")[0]  # al_x, al_x.2, al_x.cancel
                owner = await self.redis.hget(keys.alert(candidate), "agency")
                aid = candidate if owner is not None and text(owner) == agency_id else None
            found.append((n, aid))
        return found

    # Cancel -------------------------------------------------------------------

    async def cancel(self, aid: str, *, agency_id: str = "", cap: dict | None = None, cap_digest: str = "") -> dict:
        """Stop the alert and its update rounds: no step starts after this returns."""
        outcome, detail = await self.t.cancel_alert(aid, agency_id=agency_id, digest=cap_digest, **cap_message(cap))
        if _seen_before(outcome, detail, aid, cap_digest):
            return {"id": aid, "status": "cancelled", "repeated": True}
        if outcome == "cancelled" and detail != "done":
            self.dispatch.close_open(aid, "cancelled")
        for child in await Alerts(self.redis).rounds(aid):
            round_outcome, before = await self.t.cancel_alert(child)
            if round_outcome == "cancelled" and before != "done":
                self.dispatch.close_open(child, "cancelled")
        return {"id": aid, "status": "cancelled" if outcome == "cancelled" else detail}

    # Update -------------------------------------------------------------------

    async def update(self, aid: str, doc: dict, *, agency_id: str = "", cap: dict | None = None,
                     cap_digest: str = "") -> dict:
        """Replace the alert's content (and area and expiry); the rest happens in `apply_update`."""
        meta = await self.redis.hmget(keys.alert(aid), "doc", "parent")
        if meta[0] is None or meta[1] is not None:
            raise _not_found()
        old = orjson.loads(meta[0])
        if old.get("status", "Actual") != doc.get("status", "Actual"):
            field_ = "alert/status" if cap else "/status"
            raise Problem(422, "Invalid request", "An update keeps the status of the alert it updates.",
                          errors=[{"field": field_, "detail": f"the alert is {old.get('status', 'Actual')}; "
                                                              "post a new alert instead"}])
        digest = cap_digest or body_digest(doc)
        # CAP has no words for these: an update that does not say keeps them.
        for name in ("policy", "response_options"):
            if name not in doc and name in old:
                doc = {**doc, name: old[name]}
        outcome, detail = await self.t.update_alert(aid, orjson.dumps(doc), expires_ms(doc), agency_id=agency_id,
                                                    digest=digest, **cap_message(cap))
        if _seen_before(outcome, detail, aid, digest):
            return {"id": aid, "status": "updated", "repeated": True}
        if outcome == "closed":
            raise Problem(409, "Alert closed", f"The alert is {detail}; an update cannot reopen it. "
                                               "Post a new alert.")
        version = int(detail)
        self.dispatch.apply_update(aid, version, turn_of(doc))
        return {"id": aid, "status": "updated", "version": version}

    async def apply_update(self, engine, aid: str, version: int) -> UpdateWork | None:
        """In a worker, after `update`: who the new version adds, drops, and tells again.

        None means "not yet": the alert's first fan-out is still planning, so
        the deliveries to compare with are not all there; ask again shortly.
        """
        r = self.redis
        status, fanned, targeted, current, raw_doc, agency_id, cb = (
            text(v) if v is not None else None
            for v in await r.hmget(keys.alert(aid), "status", "fanned", "targeted", "version", "doc", "agency",
                                   "cb"))
        if status in (None, "cancelled", "expired") or int(current or 1) != version:
            return UpdateWork()  # gone, or a newer update will do this
        planned = int(await r.hget(keys.alert_counts(aid), "targeted") or 0)
        if not fanned or planned < int(targeted or 0):
            return None
        doc = orjson.loads(raw_doc)
        agency = await get_agency(r, agency_id)
        wanted = await resolve_audience(r, doc["audience"], drill=doc.get("status", "Actual") != "Actual",
                                        within=agency.area() if agency else None)
        wanted_set = set(wanted)
        by_state = await deliveries.in_states(r, aid, STATES)
        known = {rid for page in by_state.values() for rid in page}
        work = UpdateWork()

        # Residents the area no longer covers: their pending steps stop.
        work.dropped = [rid for state in OPEN for rid in by_state[state] if rid not in wanted_set]
        if work.dropped:
            for i in range(0, len(work.dropped), 500):
                pipe = r.pipeline(transaction=False)
                await engine.t.close(pipe, aid, work.dropped[i:i + 500], "cancelled")
                await pipe.execute()

        # Residents it adds: planned like the first fan-out, numbered after everyone
        # planned so far (a second run of this task numbers on from the first's).
        added = [rid for rid in wanted if rid not in known]
        if added:
            last = await deliveries.last_seq(r, aid)
            await self.t.grow_alert(aid, len(known) + len(added))
            size = engine.settings.batch_size
            work.added = [(last + 1 + i, added[i:i + size]) for i in range(0, len(added), size)]

        # Earlier rounds still going get the new content too; their residents
        # are not told again in a new round.
        round_id = f"{aid}_v{version}"
        still_open: set[str] = set()
        for child in await Alerts(r).rounds(aid):
            if child == round_id:
                continue
            if await self.t.refresh_round(child, raw_doc, expires_ms(doc)):
                for page in (await deliveries.in_states(r, child, OPEN)).values():
                    still_open.update(page)

        # Everyone already confirmed hears it again, on the channel that confirmed them.
        confirmed = [rid for rid in by_state["confirmed"] if rid in wanted_set and rid not in still_open]
        if confirmed:
            await self._start_round(engine, aid, round_id, doc, raw_doc, confirmed, agency_id, bool(cb))
            work.round_id, work.round_items = round_id, confirmed
        return work

    async def _start_round(self, engine, aid: str, child: str, doc: dict, raw_doc: str, rids: list[str],
                           agency_id: str, callbacks: bool) -> None:
        """The update round `child` (named after the version, so a task run twice makes it once)."""
        r = self.redis
        policy = Policy.from_alert(doc)
        pipe = r.pipeline(transaction=False)
        for rid in rids:
            pipe.hmget(keys.delivery(aid, rid), "p", "k", "y", "q")
        rows = []
        for rid, (p, k, y, q) in zip(rids, await pipe.execute()):
            step = update_round_step(orjson.loads(p), int(k), text(y or b""), policy)
            rows.append((rid, int(q), [step], "planned"))  # the same number as in the alert itself
        await self.t.start_round(child, aid, raw_doc, agency_id, expires_ms=expires_ms(doc), callbacks=callbacks,
                                 residents=len(rows))
        for start in range(0, len(rows), 1000):
            await engine.t.plan(child, policy.level, policy.max_attempts, rows[start:start + 1000])
        # A second run may have found more confirmed: the round counts everyone planned in it.
        planned = int(await r.hget(keys.alert_counts(child), "targeted") or 0)
        if planned > len(rows):
            await self.t.grow_alert(child, planned)


@dataclass
class UpdateWork:
    """What an update leaves for the workers to send."""

    added: list[tuple[int, list[str]]] = field(default_factory=list)  # (first sequence number, resident ids)
    dropped: list[str] = field(default_factory=list)
    round_id: str = ""
    round_items: list[str] = field(default_factory=list)


def _seen_before(outcome: str, detail: str, aid: str, digest: str) -> bool:
    """What an update and a cancel check first: no such alert is a 404; the
    same CAP message again is answered as before (True), another with its
    identifier is a 409."""
    if outcome == "missing":
        raise _not_found()
    if outcome == "prior":
        _same_message(detail, aid, digest)
        return True
    return False


def _same_message(prior: str, aid: str, digest: str) -> None:
    prior_id, prior_digest = (prior.split("|") + [""])[:2]
    if prior_id != aid or prior_digest != digest:
        raise Problem(409, "CAP message reused", "This sender already posted a message with this identifier "
                      "and a different content.",
                      errors=[{"field": "alert/identifier",
                               "detail": "already used by this sender with a different message"}])


# Quiet hours ----------------------------------------------------------------------


async def plan_and_start(engine, aid: str, first_seq: int, rids: list[str]) -> None:
    """`engine.plan_and_send`, except that residents in their quiet hours
    (when the severity table says to respect them) get their first step on a
    timer for when the hours end."""
    view = await engine.alert(aid)
    if not view.policy.quiet_hours:
        await engine.plan_and_send(aid, first_seq, rids)
        return
    redis = engine.redis
    now = now_ms()
    pipe = redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(keys.resident(rid), "p", "x")
    fields = await pipe.execute()
    held: dict[int, int] = {}
    for i, (p, _) in enumerate(fields):
        if p is not None:
            until = first_send_at_ms(orjson.loads(p).get("qh"), True, now)
            if until:
                held[i] = until
    # Those who may hear it now, in runs that keep their sequence numbers.
    start = 0
    for i in sorted(held) + [len(rids)]:
        if i > start:
            await engine.plan_and_send(aid, first_seq + start, rids[start:i])
        start = i + 1
    if not held:
        return
    specs = engine.specs()
    rows, timers = [], {}
    for i, until in held.items():
        p, x = fields[i]
        prof = profile({b"p": p, b"x": x})
        steps = build_plan(prof, view.policy, specs)
        state = initial_state(prof, view.policy, steps)
        rows.append((rids[i], first_seq + i, steps, state))
        if state == "planned":
            # The retry timer of step 0, attempt 0: when due, the step is sent (transitions.lua, op timer).
            timers[f"{rids[i]}|0|r|0"] = until
    await engine.t.plan(aid, view.policy.level, view.policy.max_attempts, rows)
    if timers:
        await redis.zadd(keys.alert_timers(aid), timers, nx=True)
