"""Provider storms: a provider misbehaving during a live alert, and what it cost.

One alert goes to a mixed city (feature phones: SMS then a call; smartphones:
app push, SMS, call; landlines: a call; no phone: a letter).  As its first
sends reach the provider, the storm is switched on through the simulator's
control endpoint (`PUT /_sim/faults`) for a while, then off; the runner samples the
timers' lag and scrapes /metrics and the console's provider health while it
lasts, waits for every resident to end, and judges from Redis and from what the
simulator's residents received.  Shared by tests/e2e/test_provider_storms.py
(a thousand residents, storms of seconds) and bench/chaos_storms.py (ten
thousand, storms of a minute); the timer-lag and recovery watch and the
/metrics scrape are bench/chaos.py's (tests/e2e/fault_drill.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from fault_drill import Watch, claimed_sends, duplicated_sends, scrape
from stackkit import in_flight

from gateway import keys
from gateway.api.http import STATE
from gateway.console.providers import health
from gateway.deliveries import history_lines
from gateway.transitions import TERMINAL

SMS_TIMEOUT_S = 6
STEP_TIMEOUTS = {"push": 4, "sms": SMS_TIMEOUT_S, "voice": 15, "mail": 60}
ALERT = {
    "event": "Flood", "severity": "Severe", "urgency": "Immediate",
    "content": {"ko": {"headline": "홍수 경보", "body": "저지대 주민은 즉시 대피하십시오."}},
    "audience": {"districts": ["11130"]},
    "policy": {"channels": ["push", "sms", "voice", "mail"], "confirmation": "delivered",
               "step_timeouts": STEP_TIMEOUTS},
}


@dataclass(frozen=True)
class Storm:
    name: str
    title: str
    # PUT to /_sim/faults while the storm lasts (simulator/faults.py).
    faults: dict
    # The provider whose health and errors the console and /metrics must show; None: callbacks only.
    shows_as: str | None = "twilio"
    # A send that hangs shows only when the gateway gives up on it (channels/twilio.py: 15 s).
    at_least_s: float = 0.0
    # The simulator's request counter whose first count starts the storm; None: the alert's first send.
    starts_on: str | None = "requests.POST /2010-04-01/Accounts/{AccountSid}/Messages.json"
    # The storm is already raging when the alert is posted (its first sends meet it).
    before_alert: bool = False


TWILIO = ("twilio-sms", "twilio-voice")
STORMS = [
    Storm("twilio-500", "Twilio answers 500", {p: {"error_rate": 1.0} for p in TWILIO}),
    Storm("twilio-429", "Twilio answers 429 (20429)", {p: {"rate_limit": 0} for p in TWILIO}),
    Storm("twilio-hang", "Twilio never answers (timeouts)", {p: {"outage": "hang"} for p in TWILIO}, at_least_s=20),
    Storm("twilio-hang-first", "Twilio never answers, from before the first send", {p: {"outage": "hang"} for p in TWILIO},
          at_least_s=20, before_alert=True),
    Storm("callbacks-lost", "status callbacks lost", {p: {"lost_callbacks": 1.0} for p in TWILIO}, None),
    Storm("callbacks-dup3", "status callbacks duplicated 3x",
          {p: {"duplicate_callbacks": 1.0, "duplicate_times": 3} for p in TWILIO}, None),
    Storm("callbacks-reordered", "status callbacks reordered", {p: {"reorder_callbacks": 1.0} for p in TWILIO},
          None),
    # Later than the SMS step's timeout: the step would escalate without its receipt.
    Storm("callbacks-delayed", f"status callbacks {SMS_TIMEOUT_S + 4} s late (past the step's timeout)",
          {p: {"callback_delay_s": SMS_TIMEOUT_S + 4} for p in TWILIO}, None),
    Storm("fcm-unavailable", "FCM answers UNAVAILABLE, Retry-After", {"fcm": {"outage": "503"}}, "fcm",
          starts_on="requests.POST /v1/projects/{project}/messages:send"),
    Storm("drop-box-unwritable", "print house's drop box unwritable", {"printhouse": {"unwritable": True}}, None,
          starts_on=None),
]
BY_NAME = {s.name: s for s in STORMS}


def storm_city(count: int, prefix: str = "s") -> tuple[list[dict], list[dict]]:
    """(residents, simulator behaviours) of district 11130: of each hundred, 50 feature
    phones, 30 smartphones, 19 landlines and one resident with no phone (a letter:
    rendering it costs a worker more than all the rest of its batch)."""
    residents, behaviours = [], []
    for i in range(count):
        rid, kind = f"{prefix}{i:06d}", i % 100
        number = f"+8210{7 if kind < 80 else 2}{i:07d}"
        doc = {"id": rid, "languages": ["ko"], "district": "11130", "contacts": []}
        behaviour = {"resident": rid, "sms": {"outcome": "delivered"}, "voice": {"answer": "human"},
                     "push": {"ack": True, "ack_after_s": 50}, "mail": {"outcome": "posted", "after_s": 200}}
        if kind < 50:
            doc["contacts"].append({"type": "phone", "number": number, "handset": "feature_phone"})
            behaviour["phones"] = [number]
        elif kind < 80:
            token = f"fcm-storm-{rid}"
            doc["contacts"] += [{"type": "fcm", "token": token},
                                {"type": "phone", "number": number, "handset": "smartphone"}]
            behaviour |= {"phones": [number], "fcm_tokens": [token]}
        elif kind < 99:
            doc["contacts"].append({"type": "phone", "number": number, "handset": "landline"})
            behaviour["phones"] = [number]
        else:
            postcode, line = f"{10000 + i % 90000:05d}", f"세종대로 {i}"
            doc["contacts"].append({"type": "postal", "lines": [line, "서울특별시 종로구"], "postcode": postcode})
            behaviour["postal"] = [f"{postcode}|{line}"]
        residents.append(doc)
        behaviours.append(behaviour)
    return residents, behaviours


@dataclass
class Verdict:
    storm: str
    residents: int
    lost: int = 0
    duplicated: int = 0
    in_flight: int = 0
    # Residents sent something more than a second after they confirmed.
    contacted_after_confirming: int = 0
    # Residents called although their text had reached them (its receipt lost or late).
    called_though_texted: int = 0
    max_lag_s: float = 0.0
    recovery_s: float = 0.0
    states: dict = field(default_factory=dict)
    # /metrics and provider health as seen while the storm lasted.
    during: list[str] = field(default_factory=list)
    # Failed (or never answered) attempts of the storm's provider: before it, at its end.
    provider_failures: tuple[int, int] = (0, 0)
    # Per-channel event counters against the events each resident's history holds once.
    counted_events: int = 0
    distinct_events: int = 0
    # The fewest connections the API's Redis pool had idle while the storm lasted (0: callers waited).
    pool_idle_min: int = -1

    def notes(self) -> list[str]:
        return [(f"states {self.states}; in flight at the storm {self.in_flight}; duplicated {self.duplicated}; "
                 f"contacted after confirming {self.contacted_after_confirming}; "
                 f"called though texted {self.called_though_texted}; "
                 f"{self.storm_shows()}; events counted {self.counted_events} of {self.distinct_events} said; "
                f"API Redis pool: fewest idle {self.pool_idle_min}"),
                *self.during[-3:]]

    def shown_failing(self, provider: str) -> bool:
        """Whether /metrics and the console, at the storm's end, showed `provider` failing."""
        last = self.during[-1] if self.during else ""
        metrics = any(f'provider="{provider}"' in part and 'outcome="failed"' in part for part in last.split(", "))
        return metrics and f"console {provider} " in last and f"console {provider} error rate 0%" not in last

    def storm_shows(self) -> str:
        before, at_end = self.provider_failures
        return f"provider failures {before} -> {at_end} during the storm"


class StormRun:
    """One storm during one alert, on a running city (tests/e2e/conftest.py `City`)."""

    def __init__(self, city, storm: Storm, residents: int, duration_s: float):
        self.city, self.storm, self.n = city, storm, residents
        self.duration_s = max(duration_s, storm.at_least_s)
        self.verdict = Verdict(storm.title, residents)
        self.control = f"http://127.0.0.1:{city.stack.sim_port}/_sim/faults"

    async def __call__(self, settle_timeout_s: float = 300) -> Verdict:
        city, v = self.city, self.verdict
        residents, behaviours = storm_city(self.n)
        self.rids = [r["id"] for r in residents]
        for start in range(0, self.n, 5000):
            await city.import_ndjson(residents[start:start + 5000], behaviours[start:start + 5000])
        v.provider_failures = (await self._failures(), 0)
        if self.storm.before_alert:
            await self._faults(self.storm.faults)
        self.aid = await city.post_alert(ALERT)
        # The storm breaks as the first sends reach its provider, most still to go.
        while not (city.sim.stats[self.storm.starts_on] if self.storm.starts_on else len(city.sim.records)):
            await asyncio.sleep(0.02)
        await self._faults(self.storm.faults)
        watch = Watch(city.redis, self.aid, fault_start=time.monotonic())
        v.in_flight = await in_flight(city.redis, self.aid, self.rids)
        storm_end = watch.fault_start + self.duration_s
        try:
            # /metrics and the console read every delivery's history: looked at
            # half a dozen times a storm, lest the looking be the load.
            look_every, looked = max(2.0, self.duration_s / 6), 0.0
            pool = city.app[STATE]["redis"].connection_pool
            while time.monotonic() < storm_end:
                await watch.sample(self.n)
                v.pool_idle_min = pool.idle if v.pool_idle_min < 0 else min(v.pool_idle_min, pool.idle)
                if time.monotonic() - looked >= look_every:
                    looked = time.monotonic()
                    v.during.append(f"t+{looked - watch.fault_start:.0f}s: {await self._shown()}")
                await asyncio.sleep(min(0.5, max(0.0, storm_end - time.monotonic())))
            # The last look before it ends.
            v.during.append(f"t+{time.monotonic() - watch.fault_start:.0f}s: {await self._shown()}")
            v.provider_failures = (v.provider_failures[0], await self._failures())
        finally:
            await self._faults({})
        watch.fault_end = time.monotonic()
        deadline = watch.fault_end + settle_timeout_s
        while time.monotonic() < deadline and not (watch.terminal >= self.n and watch.recovered_at):
            await watch.sample(self.n)
            await asyncio.sleep(0.5)
        v.max_lag_s, v.recovery_s = round(watch.max_lag_s, 1), round(watch.recovery_s, 1)
        await self._judge()
        return v

    async def _faults(self, spec: dict) -> None:
        async with self.city.http.put(self.control, json=spec) as r:
            assert r.status == 200, await r.text()

    async def _failures(self) -> int:
        """Attempts of the storm's provider that failed or were never answered, as the console counts them."""
        if self.storm.shows_as is None:
            return 0
        tallies, _ = await health(self.city.redis)
        for t in tallies:
            if t.provider == self.storm.shows_as:
                return sum(n for (_, outcome), n in t.results.items() if outcome in ("failed", "pending"))
        return 0

    async def _shown(self) -> str:
        """What /metrics shows (queue depth, timer lag, provider attempts), with the console's provider health."""
        tallies, _ = await health(self.city.redis)
        return ", ".join([await scrape(self.city.http, self.city.api),
                          *(f"console {t.provider} error rate {t.error_rate:.0%}" for t in tallies)])

    async def _judge(self) -> None:
        v, r = self.verdict, self.city.redis
        # Late callbacks still arrive while the judge reads: one applied between reading the
        # histories and the counters would be counted but not seen.  An event new to a history
        # moves a counter, so histories read between two equal readings of the counters agree
        # with them (one transaction of every history timed out at 10,000 residents).
        counts = await r.hgetall(keys.alert_counts(self.aid))
        for _ in range(10):
            rows = []
            for start in range(0, self.n, 1000):
                pipe = r.pipeline(transaction=False)
                for rid in self.rids[start:start + 1000]:
                    pipe.hmget(keys.delivery(self.aid, rid), "s", "y", "h", "p")
                rows += await pipe.execute()
            counts, before = await r.hgetall(keys.alert_counts(self.aid)), counts
            if counts == before:
                break
        states, histories, sends = {}, {}, {}
        for rid, (state, proof, h, plan) in zip(self.rids, rows):
            states[rid] = (state or b"").decode()
            histories[rid] = ((h or b"").decode(), (proof or b"").decode().partition(":")[2])
            sends[rid] = claimed_sends(plan, history_lines(h))
        v.states = dict(Counter(states.values()))
        v.lost = sum(1 for s in states.values() if s not in TERMINAL)
        mine = [e for e in self.city.sim.records if e["resident"] in states]
        v.duplicated = sum(duplicated_sends(mine, sends).values())
        v.contacted_after_confirming = sum(1 for rid, (h, level) in histories.items()
                                           if states[rid] == "confirmed" and claimed_after(h, level))
        texted = {e["resident"] for e in mine if e["channel"] == "sms" and e["received_at"]}
        v.called_though_texted = len({e["resident"] for e in mine if e["channel"] == "voice" and e["resident"] in texted})
        v.counted_events = sum(int(n) for f, n in counts.items() if f.startswith(b"a:"))
        v.distinct_events = sum(len({line.split("|", 1)[1] for line in h.split("\n") if line
                                     and line.split("|")[3] != "*"}) for h, _ in histories.values())


def claimed_after(history: str, level: str) -> bool:
    """Whether a send was claimed after the event that confirmed the delivery was
    recorded.  The history is in the order Redis applied it; the times in it are
    when each event was stamped, which a busy process may apply seconds later."""
    confirmed = False
    for line in history.split("\n"):
        status = line.split("|")[4] if line else ""
        confirmed = confirmed or status == level
        if confirmed and status == "claimed":
            return True
    return False


async def storm(city, name: str, residents: int, duration_s: float, settle_timeout_s: float = 300) -> Verdict:
    return await StormRun(city, BY_NAME[name], residents, duration_s)(settle_timeout_s)
