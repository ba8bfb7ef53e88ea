"""The delivery engine: plan, claim, send, escalate.

Stateless between calls: all state is in Redis and every move goes through
`transitions.lua`, so any worker may run any batch, and a batch run twice
sends nothing twice (the claim refuses a step already sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import orjson
from redis.exceptions import RedisError

from channels import discover
from channels.base import (
    UNANSWERED,
    Channel,
    ChannelContext,
    Message,
    Outcome,
    ProviderEvent,
    Recipient,
)

from . import contact_ages, deliveries, keys
from .alerts import drill_of
from .crypto import Vault
from .fallback import (
    ChannelSpec,
    Policy,
    build_plan,
    initial_state,
    pick_language,
    retry_after_ms,
    turn_of,
)
from .group_commit import GroupCommit
from .registry import Registry, profile
from .transitions import CLAIM_LEASE_MS, RANK_DELIVERED, Event, Transitions, now_ms, text

log = logging.getLogger("gateway.engine")

# (resident id, step, attempt)
Item = tuple[str, int, int]
FollowUp = Callable[[str, list[Item], int], Awaitable[None] | None]


class UnknownAlert(LookupError):
    """A provider asked about an alert this gateway never had (a URL nobody handed out)."""


@dataclass
class AlertView:
    doc: dict
    policy: Policy
    languages: list[str]
    fetched_ms: int
    # Bumped by an update (gateway/lifecycle.py).
    version: bytes | None = None
    expires_at: float | None = None
    # What every message in one language shares, worked out once (Engine.message).
    by_language: dict[str, tuple] = field(default_factory=dict)
    # The language each (resident's languages, channel) gets.
    picked: dict[tuple, str] = field(default_factory=dict)


# Webhook flushes under way at once in the API: connections the group commit may hold.
FLUSHES_AT_ONCE = 4


class Engine:
    ALERT_CACHE_MS = 5_000

    def __init__(self, settings, redis, *, follow_up: FollowUp | None = None):
        self.settings = settings
        self.redis = redis
        self.vault = Vault.of(settings)
        self.registry = Registry(redis, self.vault)
        self.t = Transitions(redis)
        # What every channel, and the resident pages, report through: one way in for every event.
        self.context = ChannelContext(settings=settings, report=self.report, compose=self.compose,
                                      redis=redis, registry=self.registry)
        self.channels: dict[str, Channel] = {}
        # How escalations found outside a worker (webhooks) reach one.
        self.follow_up = follow_up
        self._alerts: dict[str, AlertView] = {}
        self._inflight = asyncio.Semaphore(settings.inflight_per_worker)
        # Webhooks arriving together are recorded together (gateway/group_commit.py).  Where the
        # next steps go to the workers (the API), a flush never sends, so flushes are capped and a
        # burst cannot drain the pool; a worker's flush sends them itself, and a send that is never
        # answered reports through this same commit: capped there, flushes could wait on each other.
        self._reports = GroupCommit(self._record_events, concurrency=FLUSHES_AT_ONCE if follow_up else None)

    def open_channels(self, http=None) -> None:
        self.context.http = http
        for name, cls in discover().items():
            channel = cls(self.context)
            if channel.available():
                self.channels[name] = channel

    async def close(self) -> None:
        await self._reports.drain()
        for channel in self.channels.values():
            await channel.close()

    def specs(self) -> dict[str, ChannelSpec]:
        return {n: ChannelSpec(n, c.contact_types, c.handsets) for n, c in self.channels.items()}

    async def alert(self, aid: str) -> AlertView:
        """The alert as this process last read it; one HGET per call checks that
        no update came since, so pending steps send the newest words."""
        view = self._alerts.get(aid)
        if view is not None and now_ms() - view.fetched_ms <= self.ALERT_CACHE_MS:
            if await self.redis.hget(keys.alert(aid), "version") == view.version:
                return view
        raw, version, expires = await self.redis.hmget(keys.alert(aid), "doc", "version", "expires_ms")
        if raw is None:
            raise UnknownAlert(aid)
        doc = orjson.loads(raw)
        view = AlertView(doc, Policy.from_alert(doc), list(doc["content"]), now_ms(), version,
                         int(expires) / 1000 if expires and int(expires) else None)
        self._alerts[aid] = view
        return view

    # Planning ----------------------------------------------------------------

    async def plan_and_send(self, aid: str, first_seq: int, rids: list[str]) -> None:
        view = await self.alert(aid)
        specs = self.specs()
        pipe = self.redis.pipeline(transaction=False)
        for rid in rids:
            pipe.hmget(keys.resident(rid), "p", "x", "c", "lc")
        rows, opened = [], {}
        # Residents alike in all that planning reads share one plan.
        plans: dict = {}
        for seq, (rid, (p, x, c, lc)) in enumerate(zip(rids, await pipe.execute()), start=first_seq):
            if p is None:  # erased since the alert was posted
                rows.append((rid, seq, [], "unreachable"))
                continue
            prof = profile({b"p": p, b"x": x, b"lc": lc}, self.settings.contact_stale_days)
            planned = plans.get(prof)
            if planned is None:
                steps = build_plan(prof, view.policy, specs)
                planned = plans[prof] = (steps, initial_state(prof, view.policy, steps))
            steps, state = planned
            rows.append((rid, seq, steps, state))
            if state == "planned":
                # Read once here, opened only for those about to be sent to.
                opened[rid] = (p, c)
        claimed = await self.t.plan(aid, view.policy.level, view.policy.max_attempts, rows, claim=True)
        # Those planned by an earlier run of this batch go through the claim as usual.
        done = {rid for rid, _ in claimed}
        await self.send(aid, [(rid, 0, 0) for rid in opened if rid not in done], sealed=opened,
                        claimed=[self._claimed(aid, rid, 0, 0, legs) for rid, legs in claimed])

    # Sending -----------------------------------------------------------------

    async def send(self, aid: str, items: list[Item], sealed: dict | None = None, claimed: list | None = None) -> None:
        """Claim each step, send its legs concurrently, record what providers said.
        `claimed`: steps the caller claimed already (op plan)."""
        claimed = list(claimed or ())
        while items or claimed:
            view = await self.alert(aid)
            if items:
                claimed += await self._claim(aid, items)
            if not claimed:
                return
            private = await self._open_residents([c[0] for c in claimed], sealed)
            jobs = []
            for rid, k, n, legs, token in claimed:
                fields, person = private[rid]
                for leg, (channel, contact) in enumerate(legs):
                    jobs.append((rid, k, n, leg, channel, contact, token, fields, person))
            sent = await self._send_legs(aid, view, jobs)
            items, sealed, claimed = await self._record(aid, jobs, sent), None, []

    async def _send_legs(self, aid: str, view: AlertView, jobs: list) -> list:
        """Every leg at once.  A send may wait longer than its claim lease (for
        the provider's pace: 10 calls a second with thousands due), so the claims
        of those still on their way are renewed meanwhile; else another worker
        took the step over as abandoned and the resident got it twice."""
        legs = [asyncio.ensure_future(self._send_leg(aid, view, *job)) for job in jobs]
        keeper = asyncio.ensure_future(self._keep_claims(aid, jobs, legs))
        try:
            return await asyncio.gather(*legs)
        finally:
            keeper.cancel()

    async def _keep_claims(self, aid: str, jobs: list, legs: list[asyncio.Future]) -> None:
        while True:
            await asyncio.sleep(CLAIM_LEASE_MS / 3000)
            waiting = {(rid, k, n) for (rid, k, n, *_), leg in zip(jobs, legs) if not leg.done()}
            if not waiting:
                return
            try:
                pipe = self.redis.pipeline(transaction=False)
                await self.t.renew(pipe, aid, waiting)
                await pipe.execute()
            except RedisError:  # Redis away: the lease runs out as it would have
                log.warning("could not renew %d claims of %s", len(waiting), aid)

    async def _claim(self, aid: str, items: list[Item]) -> list[tuple[str, int, int, list, str]]:
        pipe = self.redis.pipeline(transaction=False)
        replies = await self.t.claim(pipe, aid, items)
        out = []
        for (rid, k, n), res in zip(items, replies.of(await pipe.execute())):
            if text(res[0]) == "ok":
                out.append(self._claimed(aid, rid, k, n, orjson.loads(res[1])))
        return out

    def _claimed(self, aid: str, rid: str, k: int, n: int, legs: list) -> tuple[str, int, int, list, str]:
        """A step claimed for sending: who, which step and attempt, its legs, the resident's page token."""
        return rid, k, n, legs, self.vault.link_token(aid, rid)

    async def _open_residents(self, rids: Iterable[str], sealed: dict | None = None) -> dict[str, tuple[dict, dict]]:
        """Profile and opened contacts of each resident; `sealed` holds rows already read."""
        sealed = sealed or {}
        rids = list(dict.fromkeys(rids))
        missing = [rid for rid in rids if rid not in sealed]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for rid in missing:
                pipe.hmget(keys.resident(rid), "p", "c")
            sealed = {**sealed, **dict(zip(missing, await pipe.execute()))}
        out = {}
        for rid in rids:
            p, c = sealed[rid]
            if p is None:
                out[rid] = ({}, {"name": "", "contacts": []})
            else:
                out[rid] = (orjson.loads(p), self.vault.open(c, bound_to=rid))
        return out

    async def _send_leg(self, aid, view, rid, k, n, leg, channel_name, contact, token, fields, person
                        ) -> tuple[Outcome, Message | None, Recipient | None]:
        channel = self.channels.get(channel_name)
        contacts = person["contacts"]
        if channel is None or contact >= len(contacts):
            return Outcome("failed", "gateway", error_code="no-channel", permanent=True,
                           detail=f"{channel_name} is not available"), None, None
        readers = tuple(fields.get("l", ()))
        lang = view.picked.get((readers, channel_name))
        if lang is None:
            lang = view.picked[readers, channel_name] = pick_language(readers, view.languages, channel.speaks)
        message = self.message(aid, view, rid, k, n, lang, token, leg, readers)
        recipient = Recipient(rid, contacts[contact], frozenset(fields.get("n", ())), readers,
                              person.get("name", ""), fields.get("by"))
        async with self._inflight:
            try:
                outcome = await channel.send(message, recipient)
            except Exception as e:  # a channel bug must not stall the batch
                log.exception("channel %s failed on %s/%s", channel_name, aid, rid)
                outcome = Outcome("failed", channel_name, error_code="exception", permanent=False, detail=repr(e)[:200])
        # The history tells when the provider answered, not when the batch got round to writing it down.
        outcome.at_ms = now_ms()
        if outcome.status == UNANSWERED:
            # Recorded at once, not with the batch: a provider that hangs holds the whole
            # batch, and its health must show the hang while it lasts.
            await self.report(ProviderEvent(aid, rid, k, n, UNANSWERED, outcome.provider, error_code=outcome.error_code,
                                            permanent=False, channel=channel_name, leg=leg, at_ms=outcome.at_ms))
        return outcome, message, recipient

    async def compose(self, aid: str, rid: str, k: int, n: int, leg: int, lang: str) -> Message:
        view = await self.alert(aid)
        token = self.vault.link_token(aid, rid)
        if lang not in view.doc["content"]:
            lang = view.languages[0]
        p = await self.redis.hget(keys.resident(rid), "p")
        return self.message(aid, view, rid, k, n, lang, token, leg, tuple(orjson.loads(p)["l"]) if p else ())

    def message(self, aid: str, view: AlertView, rid: str, k: int, n: int, lang: str, token: str,
                leg: int = 0, reader_languages: tuple[str, ...] = ()) -> Message:
        shared = view.by_language.get(lang)
        if shared is None:
            doc = view.doc
            content = doc["content"][lang]
            options = tuple((o["code"], o["label"].get(lang) or next(iter(o["label"].values())))
                            for o in doc.get("response_options", []))
            shared = view.by_language[lang] = (
                doc["event"], doc["severity"], doc.get("urgency", "Unknown"), content["headline"], content["body"],
                content.get("instruction", ""), content.get("link", ""), content.get("short", ""), options,
                drill_of(doc))
        event, severity, urgency, headline, body, instruction, link, short, options, drill = shared
        return Message(
            alert_id=aid, resident_id=rid, step=k, attempt=n, language=lang,
            event=event, severity=severity, urgency=urgency,
            headline=headline, body=body, instruction=instruction, link=link, short=short,
            page_url=f"{self.settings.public_url}/m/{aid}.{token}", response_options=options, leg=leg,
            expires_at=view.expires_at, drill=drill, reader_languages=reader_languages,
        )

    async def _record(self, aid: str, jobs: list, sent: list[tuple]) -> list[Item]:
        """Record each send's outcome; return the steps to send next at once."""
        pipe = self.redis.pipeline(transaction=False)
        # Sends never answered were recorded as they timed out (_send_leg).
        answered = [(job, s) for job, s in zip(jobs, sent) if s[0].status != UNANSWERED]
        replies = await self.t.event(pipe, aid, [
            Event(rid, k, n, leg, out.status, out.permanent, out.provider, out.ref, out.error_code, channel,
                  self._backoff_ms(channel, n), out.at_ms)
            for (rid, k, n, leg, channel, *_), (out, _, _) in answered])
        # The event replies come first; the channels' own writes follow them.
        used = set()
        for (_, _, _, _, channel_name, *_), (out, message, recipient) in zip(jobs, sent):
            channel = self.channels.get(channel_name)
            if channel is not None and message is not None:
                channel.record(pipe, message, recipient, out)
                used.add(channel)
        results = await pipe.execute()
        nxt, fresh = [], []
        for ((rid, _, _, _, _, contact, *_), _), res in zip(answered, replies.of(results)):
            res = text(res)
            if res.startswith("next:"):
                nxt.append((rid, int(res[5:]), 0))
            elif res == "confirmed":
                fresh.append((rid, contact))
        await contact_ages.confirmed(self.redis, fresh)
        for (rid, _, _, _, _, contact, *_), (out, _, _) in zip(jobs, sent):
            if out.contact_dead:
                await self.registry.mark_dead(rid, contact)
        for channel in used:
            await channel.flush()
        return nxt

    def _backoff_ms(self, channel: str, attempt: int) -> int:
        return retry_after_ms((self.channels.get(channel) or Channel).retry_backoff_s, attempt)

    def _hold_ms(self, channel: str, status: str) -> int:
        return int((self.channels.get(channel) or Channel).hold_while_sent_s * 1000) if status == "sent" else 0

    # Provider events (webhooks) ----------------------------------------------

    async def report(self, ev: ProviderEvent) -> str:
        if ev.status == "opted_out":
            return await self._opt_out(ev)
        return await self._reports.submit(ev)

    async def _record_events(self, evs: list[ProviderEvent]) -> list[str]:
        """Events reported together: one op call per alert in one round trip, then
        the contacts they prove fresh or dead, then the next steps they call for."""
        by_alert: dict[str, list[int]] = {}
        for i, ev in enumerate(evs):
            by_alert.setdefault(ev.alert_id, []).append(i)
        pipe = self.redis.pipeline(transaction=False)
        placed = []
        for aid, idx in by_alert.items():
            placed.append((idx, await self.t.event(pipe, aid, [
                Event(evs[i].resident_id, evs[i].step, evs[i].attempt, evs[i].leg, evs[i].status, evs[i].permanent,
                      evs[i].provider, evs[i].ref, evs[i].error_code, evs[i].channel,
                      self._backoff_ms(evs[i].channel, evs[i].attempt), evs[i].at_ms,
                      self._hold_ms(evs[i].channel, evs[i].status)) for i in idx])))
        results = await pipe.execute()
        out = [""] * len(evs)
        for idx, replies in placed:
            for i, res in zip(idx, replies.of(results)):
                out[i] = text(res)
        await self._contacts_proven([ev for ev, res in zip(evs, out) if ev.contact_dead or res == "confirmed"])
        nxt: dict[str, list[Item]] = {}
        for ev, res in zip(evs, out):
            if res.startswith("next:"):
                nxt.setdefault(ev.alert_id, []).append((ev.resident_id, int(res[5:]), 0))
        for aid, items in nxt.items():
            await self._follow(aid, items)
        return out

    async def _contacts_proven(self, evs: list[ProviderEvent]) -> None:
        """A confirmation makes its contact point fresh; a dead contact is marked so."""
        if not evs:
            return
        pipe = self.redis.pipeline(transaction=False)
        for ev in evs:
            pipe.hget(keys.delivery(ev.alert_id, ev.resident_id), "p")
        fresh: dict[int | None, list[tuple[str, int]]] = {}
        for ev, plan in zip(evs, await pipe.execute()):
            contact = _contact_of(ev, plan)
            if contact is None:
                continue
            if ev.contact_dead:
                await self.registry.mark_dead(ev.resident_id, contact)
            else:
                fresh.setdefault(ev.at_ms, []).append((ev.resident_id, contact))
        for at_ms, points in fresh.items():
            await contact_ages.confirmed(self.redis, points, at_ms)

    async def _opt_out(self, ev: ProviderEvent) -> str:
        """STOP ends a non-emergency delivery; emergencies still go."""
        view = await self.alert(ev.alert_id)
        if view.policy.emergency:
            return "noop"
        pipe = self.redis.pipeline(transaction=False)
        replies = await self.t.close(pipe, ev.alert_id, [ev.resident_id], "opted_out")
        return text(replies.of(await pipe.execute())[0])

    async def _follow(self, aid: str, items: list[Item]) -> None:
        if self.follow_up is None:
            await self.send(aid, items)
        else:
            res = self.follow_up(aid, items, turn_of((await self.alert(aid)).doc))
            if asyncio.iscoroutine(res):
                await res

    # Timers ------------------------------------------------------------------

    async def due(self, aid: str, members: list[str]) -> None:
        """Timers the pump found due: escalate, retry, or re-check a claim."""
        await self._look_up_lost_receipts(aid, [m for m in members if m.endswith("|t")])
        pipe = self.redis.pipeline(transaction=False)
        replies = await self.t.timer(pipe, aid, members)
        claimed = []
        for m, res in zip(members, replies.of(await pipe.execute())):
            if isinstance(res, list):  # escalated or retried, and claimed for sending
                rid = m.split("|", 1)[0]
                claimed.append(self._claimed(aid, rid, int(res[2]), int(res[3]), orjson.loads(res[1])))
        await self.send(aid, [], claimed=claimed)

    async def _look_up_lost_receipts(self, aid: str, deadlines: list[str]) -> None:
        """Before a step escalates for want of a receipt, ask the provider what
        became of the send (a lost callback must not cost the resident a second
        channel) and record the answer: a delivered message then confirms, and
        the timer finds nothing left to escalate.  Only legs a provider accepted
        and never settled are asked, once each, when their step is over."""
        if not deadlines:
            return
        pipe = self.redis.pipeline(transaction=False)
        # Deadlines are Redis's clock (transitions.lua), not this worker's.
        pipe.time()
        for member in deadlines:
            pipe.hmget(keys.delivery(aid, member.split("|", 1)[0]), "s", "k", "n", "b", "d", "p", "h")
        (seconds, micros), *rows = await pipe.execute()
        now, asks = seconds * 1000 + micros // 1000, []
        for member, (s, k, n, best, deadline, plan, h) in zip(deadlines, rows):
            rid, step = member.split("|")[:2]
            if (s != b"in_progress" or int(k) != int(step) or int(deadline or 0) > now
                    or int(best or 0) >= RANK_DELIVERED):
                continue
            legs = orjson.loads(plan)[int(k)]["l"]
            for leg, provider, ref in deliveries.awaiting_receipt(deliveries.history_lines(h), int(k), int(n)):
                channel = self.channels.get(legs[leg][0]) if leg < len(legs) else None
                if channel is not None:
                    asks.append((rid, int(k), int(n), leg, channel, provider, ref))
        if not asks:
            return

        async def ask(rid, k, n, leg, channel, provider, ref) -> None:
            async with self._inflight:
                out = await channel.look_up(provider, ref)
            if out is not None:
                await self.report(ProviderEvent(aid, rid, k, n, out.status, out.provider, out.ref, out.error_code,
                                                out.permanent, channel=channel.name, leg=leg,
                                                contact_dead=out.contact_dead, at_ms=now_ms()))

        await asyncio.gather(*(ask(*a) for a in asks))

    # Closing -----------------------------------------------------------------

    async def close_open(self, aid: str, state: str, chunk: int = 500) -> int:
        """End every delivery still open with `state` (cancelled, expired)."""
        open_ = await deliveries.in_states(self.redis, aid, ("planned", "in_progress"))
        rids = open_["planned"] + open_["in_progress"]
        closed = 0
        for i in range(0, len(rids), chunk):
            pipe = self.redis.pipeline(transaction=False)
            replies = await self.t.close(pipe, aid, rids[i:i + chunk], state)
            closed += sum(1 for r in replies.of(await pipe.execute()) if text(r) == state)
        return closed


def _contact_of(ev: ProviderEvent, plan: bytes | None) -> int | None:
    """The contact point the event's leg was sent to, from the delivery's plan."""
    if not plan:
        return None
    steps = orjson.loads(plan)
    legs = steps[ev.step]["l"] if ev.step < len(steps) else []
    return legs[ev.leg][1] if ev.leg < len(legs) else None
