"""Provider storms: a provider misbehaving during a live alert, and what it cost.

One alert goes to a mixed city (feature phones: SMS then a call; smartphones:
app push, SMS, call; landlines: a call; no phone: a letter) on the gateway as
a city runs it, every part its own process (tests/e2e/process_stack.py:
redis-server, a broker, `gateway api`, `gateway pump`, two `gateway worker`s,
the provider simulator).  As the alert's first sends reach the provider (the
simulator's /_sim/stats), the storm is switched on through the simulator's
control endpoint (`PUT /_sim/faults`) for a while, then off.  While it lasts
the runner samples the timers' lag, scrapes the API's /metrics and reads the
console's provider page signed in as an operator; then it waits for every
resident to end and judges from the deliveries in Redis and what the
simulator's residents received (its records, over HTTP).  Shared by
tests/e2e/test_provider_storms.py (a thousand residents, storms of seconds)
and bench/chaos_storms.py (ten thousand, storms of a minute); the timer-lag
and recovery watch, the /metrics scrape and the judging of duplicates are
bench/chaos.py's (tests/e2e/fault_drill.py).

What a storm can show: one of a provider (Twilio failing or hanging, FCM down)
shows as that provider's failed attempts, on /metrics and in the console's
failed column.  A callback storm harms no provider (Twilio accepts every
send), so provider health rightly stays clean; what /metrics can show of it
is the queue depths and the timer lag (steps whose receipts did not come fall
due), so of those storms the runner asks only that /metrics answered with them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis
from fault_drill import Watch, claimed_sends, console_engine_words, duplicated_sends, read_metrics, shown, sign_in
from process_stack import ProcessStack
from stackkit import in_flight

from gateway import keys
from gateway.deliveries import history_lines
from gateway.transitions import TERMINAL

SMS_TIMEOUT_S = 6
# How much longer than asked a storm waits for a send to meet it.
MEET_WAIT_S = 60
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
    # The simulator's request counter (/_sim/stats) whose first count starts the storm and whose
    # growth shows a send met it; None: sends on any channel.
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
    Storm("drop-box-unwritable", "print house's drop box unwritable", {"printhouse": {"unwritable": True}}, "printhouse",
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


# A row of the console's provider table: the provider, then its numbers
# (attempts, share of traffic, failed, error rate, ...).
PROVIDER_ROW = re.compile(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', re.DOTALL)
NUMBER = re.compile(r'<td class="num">([^<]*)')


@dataclass
class Look:
    """What an operator saw at one moment of the storm; None: the page did not answer."""

    at_s: float
    metrics: dict[str, float] | None
    # provider -> (failed attempts, error rate) as the console's provider page shows them.
    console: dict[str, tuple[int, str]] | None
    # The delivery engine's line at the top of that page, in words.
    engine: str = ""

    def metrics_failing(self, provider: str) -> bool:
        if provider == "printhouse":  # its drop box, not its attempts: letters wait unsent
            return (self.metrics or {}).get("gateway_print_house_up") == 0
        return any(name.startswith("gateway_provider_attempts") and f'provider="{provider}"' in name
                   and 'outcome="failed"' in name and n > 0 for name, n in (self.metrics or {}).items())

    def console_failing(self, provider: str) -> bool:
        if provider == "printhouse":
            return "drop box NOT answering" in self.engine
        return (self.console or {}).get(provider, (0, ""))[0] > 0

    @property
    def metrics_answered(self) -> bool:
        """Whether /metrics answered with the timers' lag and the queues' depths."""
        names = self.metrics or {}
        return "gateway_timer_lag_seconds" in names and any(n.startswith("gateway_queue_depth") for n in names)

    def __str__(self) -> str:
        metrics = "/metrics did not answer within 15 s" if self.metrics is None else shown(self.metrics)
        console = ("the console did not answer within 15 s" if self.console is None else ", ".join(
            f"console {p} failed {failed} ({rate})" for p, (failed, rate) in self.console.items()))
        engine = f"; {self.engine}" if "NOT" in self.engine else ""
        return f"t+{self.at_s:.0f}s: {metrics}; {console}{engine}"


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
    # From the storm's start to its end (a short one waits for a send to meet it).
    lasted_s: float = 0.0
    states: dict = field(default_factory=dict)
    # /metrics and the console while the storm lasted, the first look as it broke.
    looks: list[Look] = field(default_factory=list)
    # Per-channel event counters against the events each resident's history holds once.
    counted_events: int = 0
    distinct_events: int = 0
    # Worker tasks that raised: the engine must never crash, whatever the provider does.
    task_failures: list[str] = field(default_factory=list)

    @property
    def pool_idle_min(self) -> int | None:
        """The fewest connections the API's Redis pool had idle while the storm lasted (0:
        callers waited), from /metrics; each scrape covers the time since the one before,
        so the first (as the storm broke) is left out."""
        marks = [look.metrics["gateway_redis_pool_idle_fewest"] for look in self.looks[1:]
                 if look.metrics and "gateway_redis_pool_idle_fewest" in look.metrics]
        return int(min(marks)) if marks else None

    @property
    def metrics_answered(self) -> int:
        return sum(look.metrics_answered for look in self.looks)

    def shown_failing(self, provider: str) -> bool:
        """Whether /metrics and the console both showed `provider` failing while the storm lasted."""
        return (any(look.metrics_failing(provider) for look in self.looks)
                and any(look.console_failing(provider) for look in self.looks))

    def notes(self) -> list[str]:
        pool = "not shown" if self.pool_idle_min is None else f"fewest idle {self.pool_idle_min}"
        return [(f"storm lasted {self.lasted_s} s; states {self.states}; in flight at the storm {self.in_flight}; duplicated {self.duplicated}; "
                 f"contacted after confirming {self.contacted_after_confirming}; "
                 f"called though texted {self.called_though_texted}; "
                 f"events counted {self.counted_events} of {self.distinct_events} said; "
                 f"/metrics answered {self.metrics_answered} of {len(self.looks)} looks; API Redis pool: {pool}"),
                *map(str, self.looks[-3:]), *self.task_failures[:3]]


class StormRun:
    """One storm during one alert, on a ProcessStack emptied for it."""

    def __init__(self, stack: ProcessStack, storm: Storm, residents: int, duration_s: float):
        self.s, self.storm, self.n = stack, storm, residents
        self.duration_s = max(duration_s, storm.at_least_s)
        self.verdict = Verdict(storm.title, residents)

    async def __call__(self, settle_timeout_s: float = 300) -> Verdict:
        self.redis = aioredis.Redis.from_url(self.s.redis_url, socket_timeout=5, socket_connect_timeout=2)
        logs = self.s.log_sizes()
        try:
            async with aiohttp.ClientSession() as self.http, \
                    aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as self.browser:
                await self._storm(settle_timeout_s)
        finally:
            await self.redis.aclose()
        self.verdict.task_failures = self.s.task_failures(since=logs)
        return self.verdict

    async def _storm(self, settle_timeout_s: float) -> None:
        v = self.verdict
        await self.s.forget(self.redis)
        residents, behaviours = storm_city(self.n)
        self.rids = [r["id"] for r in residents]
        auth = await self.s.import_city(self.http, self.redis, residents, behaviours)
        await sign_in(self.browser, self.s, self.redis)
        if self.storm.before_alert:
            await self._faults(self.storm.faults)
        async with self.http.post(f"{self.s.api}/v1/alerts", json=ALERT, headers=auth) as r:
            assert r.status == 202, await r.text()
            self.aid = (await r.json())["id"]
        # The storm breaks as the first sends reach its provider, most still to go.
        while not await self._sends():
            await asyncio.sleep(0.05)
        await self._faults(self.storm.faults)
        watch = Watch(self.redis, self.aid, fault_start=time.monotonic())
        sends_before, met = await self._sends(), False
        v.in_flight = await in_flight(self.redis, self.aid, self.rids)
        storm_end = watch.fault_start + self.duration_s
        try:
            # /metrics and the console read a sample of the alert's histories:
            # looked at half a dozen times a storm, lest the looking be the load.
            look_every, looked = max(2.0, self.duration_s / 6), 0.0
            # A storm no send met shows nowhere: on a busy machine the next batch may
            # reach the provider seconds later, so a short storm lasts until one has.
            while (now := time.monotonic()) < storm_end or not met and now < storm_end + MEET_WAIT_S:
                await watch.sample(self.n)
                met = met or await self._sends() > sends_before
                if time.monotonic() - looked >= look_every:
                    looked = time.monotonic()
                    v.looks.append(await self._look(looked - watch.fault_start))
                await asyncio.sleep(min(0.5, max(0.05, storm_end - time.monotonic())))
            # The last look before it ends.
            v.looks.append(await self._look(time.monotonic() - watch.fault_start))
        finally:
            await self._faults({})
        watch.fault_end = time.monotonic()
        v.lasted_s = round(watch.fault_end - watch.fault_start, 1)
        deadline = watch.fault_end + settle_timeout_s
        while time.monotonic() < deadline and not (watch.terminal >= self.n and watch.recovered_at):
            await watch.sample(self.n)
            await asyncio.sleep(0.5)
        v.max_lag_s, v.recovery_s = round(watch.max_lag_s, 1), round(watch.recovery_s, 1)
        await self._judge()

    async def _sends(self) -> int:
        """Requests that reached the storm's provider (sends on any channel, for a storm of none)."""
        stats = await self.s.simulator_stats(self.http)
        if self.storm.starts_on is None:
            return sum(n for by_status in stats["records"].values() for n in by_status.values())
        group, _, name = self.storm.starts_on.partition(".")
        return stats.get(group, {}).get(name, 0)

    async def _faults(self, spec: dict) -> None:
        async with self.http.put(f"{self.s.sim}/_sim/faults", json=spec) as r:
            assert r.status == 200, await r.text()

    async def _look(self, at_s: float) -> Look:
        """/metrics (queue depth, timer lag, provider attempts, the API's Redis pool) and
        the console's provider page, as an operator looks at them."""
        async def metrics() -> dict | None:
            try:
                return await read_metrics(self.http, self.s.api)
            except (aiohttp.ClientError, TimeoutError):
                return None

        async def console() -> tuple[dict | None, str]:
            try:
                async with self.browser.get(f"{self.s.api}/ops/providers", allow_redirects=False,
                                            timeout=aiohttp.ClientTimeout(total=15)) as r:
                    assert r.status == 200, f"the console answered {r.status}"
                    page = await r.text()
            except (aiohttp.ClientError, TimeoutError):
                return None, ""
            rows = {}
            # The health table, not the SMS traffic split below it.
            for provider, cells in PROVIDER_ROW.findall(page.partition("<h2>")[0]):
                numbers = [n.strip() for n in NUMBER.findall(cells)]
                rows[provider] = (int(numbers[2]), numbers[3])
            return rows, console_engine_words(page)

        samples, (rows, engine) = await asyncio.gather(metrics(), console())
        return Look(at_s, samples, rows, engine)

    async def _judge(self) -> None:
        v, r = self.verdict, self.redis
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
        mine = [e for e in await self.s.simulator_records(self.http) if e["resident"] in states]
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


async def storm(stack: ProcessStack, name: str, residents: int, duration_s: float,
                settle_timeout_s: float = 300) -> Verdict:
    return await StormRun(stack, BY_NAME[name], residents, duration_s)(settle_timeout_s)
