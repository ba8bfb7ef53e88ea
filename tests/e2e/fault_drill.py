"""One live alert through one fault, and what it cost: the drill behind
bench/chaos.py and the tests/e2e/test_faults_*.py tests.

An alert goes to every resident by SMS, then voice: most texts are delivered
at once; one resident in SILENT_EVERY never gets a receipt, so their SMS step
times out after SMS_TIMEOUT_S and they are called. When a quarter of the texts
are out the fault (an async function of the Run) strikes; the drill waits for
every resident to be terminal, then judges:
- lost: residents not in exactly one terminal state;
- duplicated: sends beyond one per attempt the gateway claimed (the
  simulator's records against the deliveries' histories: a retry after a
  failed attempt is an attempt of its own), to be at most what was in flight
  at the fault;
- max_lag_s: the longest escalation lag of SMS steps due at or after the
  fault (from the deadline to the call's claim, in the deliveries' histories),
  or how far the oldest due timer was behind (Redis TIME minus its deadline,
  sampled every 0.5 s from the fault to its recovery) if that is longer;
- recovery_s: from the fault's end until timers are on time (lag < 1 s) and
  residents reach terminal states again (or all have);
and besides: residents contacted again after they confirmed, calls placed
before the SMS step's timeout (a timer fired early), what /metrics showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson
import redis.asyncio as aioredis

from gateway import keys
from gateway.console.auth import create_operator
from gateway.deliveries import history_lines
from gateway.transitions import STATES, TERMINAL
from process_stack import ProcessStack
from stackkit import in_flight

SMS_TIMEOUT_S = 10
# Share of residents whose SMS receipt never comes: their timers fire during the run.
SILENT_EVERY = 7
SETTLE_TIMEOUT_S = 300
EARLY_S = 5
REDIS_UNREACHABLE_S = 30
PUMP_DOWN_S = 15


def city(count: int) -> tuple[list[dict], list[dict]]:
    """(residents, simulator behaviours): feature phones in district 11110."""
    residents, behaviours = [], []
    for i in range(count):
        rid, number = f"c{i:06d}", f"+82105{i:07d}"
        residents.append({"id": rid, "languages": ["ko"], "district": "11110",
                          "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]})
        # A receipt 10,000 simulated seconds late never comes within the step.
        sms = {"outcome": "delivered", "delay_s": 10_000.0} if i % SILENT_EVERY == 0 else {"outcome": "delivered"}
        behaviours.append({"resident": rid, "phones": [number], "sms": sms, "voice": {"answer": "human"}})
    return residents, behaviours


ALERT = {
    "event": "Flood", "severity": "Severe", "urgency": "Immediate",
    "content": {"ko": {"headline": "홍수 경보", "body": "저지대 주민은 즉시 대피하십시오."}},
    "audience": {"districts": ["11110"]},
    "policy": {"channels": ["sms", "voice"], "confirmation": "delivered",
               "step_timeouts": {"sms": SMS_TIMEOUT_S, "voice": 120}},
}


@dataclass
class Watch:
    """What the runner sees while a fault lasts and until it has recovered."""

    redis: aioredis.Redis
    aid: str
    fault_start: float = 0.0
    fault_end: float | None = None
    recovered_at: float | None = None
    max_lag_s: float = 0.0
    terminal_at_end: int = -1
    terminal: int = 0
    metrics: list[str] = field(default_factory=list)

    async def sample(self, residents: int) -> None:
        try:
            seconds, micros = await asyncio.wait_for(self.redis.time(), 2)
            now_ms = seconds * 1000 + micros // 1000
            first = await asyncio.wait_for(self.redis.zrange(keys.alert_timers(self.aid), 0, 0, withscores=True), 2)
            counts = await asyncio.wait_for(self.redis.hmget(keys.alert_counts(self.aid), *STATES), 2)
        except (asyncio.TimeoutError, OSError, aioredis.RedisError):
            return  # Redis is the fault: the lag shows once it answers again
        lag = max(0.0, (now_ms - first[0][1]) / 1000) if first else 0.0
        self.max_lag_s = max(self.max_lag_s, lag)
        self.terminal = sum(int(c or 0) for s, c in zip(STATES, counts) if s in TERMINAL)
        if self.fault_end is not None and self.recovered_at is None and time.monotonic() >= self.fault_end:
            if self.terminal_at_end < 0:
                self.terminal_at_end = self.terminal
            if lag < 1.0 and (self.terminal > self.terminal_at_end or self.terminal >= residents):
                self.recovered_at = time.monotonic()

    @property
    def recovery_s(self) -> float:
        return (self.recovered_at or time.monotonic()) - (self.fault_end or self.fault_start)


async def read_metrics(http: aiohttp.ClientSession, api: str) -> dict[str, float]:
    """Every sample /metrics shows, by name with its labels; raises if it does not answer within 15 s."""
    async with http.get(f"{api}/metrics", timeout=aiohttp.ClientTimeout(total=15)) as r:
        body = await r.text()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def shown(samples: dict[str, float]) -> str:
    """Queue depth, timer lag, Redis and provider errors, as the drills note them."""
    return ", ".join(f"{name.replace('gateway_', '')}={value:g}" for name, value in samples.items()
                     if name.startswith(("gateway_queue_depth", "gateway_timer_lag_seconds", "gateway_redis_",
                                         "gateway_print_house_up"))
                     or name.startswith("gateway_provider_attempts") and 'outcome="ok"' not in name)


OPERATOR, PASSWORD = "on-duty", "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ENGINE_LINE = re.compile(r'<section class="engine[^"]*"[^>]*>(.*?)</section>', re.S)


async def sign_in(browser: aiohttp.ClientSession, stack: ProcessStack, redis) -> None:
    """As an operator on duty: a viewer account, the console's login form and its CSRF token
    (`browser` keeps the cookies of 127.0.0.1: aiohttp.CookieJar(unsafe=True))."""
    await create_operator(redis, OPERATOR, "viewer", PASSWORD)
    async with browser.get(f"{stack.api}/ops/login") as r:
        form = await r.text()
    async with browser.post(f"{stack.api}/ops/login", allow_redirects=False, data={
            "csrf": CSRF.search(form).group(1), "name": OPERATOR, "password": PASSWORD, "next": "/ops/alerts"}) as r:
        assert r.status == 303, await r.text()


async def console_engine_line(browser: aiohttp.ClientSession, api: str) -> str:
    """The delivery engine's line as the console shows it (templates/web/ops/macros.html), or why not."""
    try:
        async with browser.get(f"{api}/ops/alerts", allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=15)) as r:
            page = await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        return f"console unreachable ({type(e).__name__})"
    words = console_engine_words(page)
    return f"console {r.status}: {words}" if words else f"console answered {r.status} without the engine's line"


def console_engine_words(page: str) -> str:
    """The delivery engine's line of a console page, in words; empty if it has none."""
    found = ENGINE_LINE.search(page)
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split()) if found else ""


async def scrape(http: aiohttp.ClientSession, api: str) -> str:
    """What /metrics shows of the fault, or why it could not."""
    try:
        return shown(await read_metrics(http, api))
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        return f"/metrics unreachable ({type(e).__name__})"


class Run:
    """One alert through one fault, on a stack of its own."""

    def __init__(self, stack: ProcessStack, residents: int):
        self.s = stack
        self.n = residents
        self.rids = [f"c{i:06d}" for i in range(residents)]
        self.records_before: list[dict] = []
        self.in_flight = 0
        self.notes: list[str] = []
        # What the drill finds (see the module's doc); each but in_flight is 0 when all is well.
        self.lost = self.duplicated = self.calls = self.retries = 0
        self.max_lag_s = 0.0
        self.fault_at_ms = 0
        self.contacted_again = 0
        self.early_calls = 0

    async def __call__(self, fault) -> "Run":
        self.redis = aioredis.Redis.from_url(self.s.redis_url, socket_timeout=5, socket_connect_timeout=2)
        async with aiohttp.ClientSession() as http, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as self.browser:
            self.http = http
            residents, self.behaviours = city(self.n)
            self.auth = await self.s.import_city(http, self.redis, residents, self.behaviours)
            await sign_in(self.browser, self.s, self.redis)
            async with http.post(f"{self.s.api}/v1/alerts", json=ALERT, headers=self.auth) as r:
                assert r.status == 202, await r.text()
                self.aid = (await r.json())["id"]
            self.started = time.time()
            self.watch = Watch(self.redis, self.aid)
            sampler = asyncio.create_task(self._sample())
            try:
                await self._until_sent(self.n // 4)
                self.watch.fault_start = time.monotonic()
                self.fault_at_ms = await self._redis_ms()
                await fault(self)
                self.watch.fault_end = time.monotonic()
                await self._settled()
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            await self._judge()
        await self.redis.aclose()
        return self

    async def _sample(self) -> None:
        last_scrape = 0.0
        while True:
            await self.watch.sample(self.n)
            during = self.watch.fault_start and (self.watch.fault_end is None or self.watch.recovered_at is None)
            if during and time.monotonic() - last_scrape >= 2 and len(self.watch.metrics) < 40:
                last_scrape = time.monotonic()
                at = last_scrape - self.watch.fault_start
                metrics, console = await asyncio.gather(scrape(self.http, self.s.api),
                                                        console_engine_line(self.browser, self.s.api))
                self.watch.metrics.append(f"t+{at:.0f}s: {metrics}; {console}")
            await asyncio.sleep(0.5)

    async def _until_sent(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(await self.s.simulator_records(self.http)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} sends after {timeout}s")
            await asyncio.sleep(0.1)

    async def _settled(self) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.watch.terminal >= self.n and self.watch.recovered_at is not None:
                return
            await asyncio.sleep(0.5)
        self.notes.append(f"not settled after {SETTLE_TIMEOUT_S}s")

    async def _redis_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return seconds * 1000 + micros // 1000

    def _escalation_lag_s(self, claims: dict[str, dict[int, int]]) -> float:
        """The longest wait, among SMS steps whose deadline fell at or after the fault,
        from the deadline to the call's claim (both in the delivery's history, by Redis's clock)."""
        worst = 0.0
        for steps in claims.values():
            if 0 in steps and 1 in steps:
                deadline = steps[0] + SMS_TIMEOUT_S * 1000
                if deadline >= self.fault_at_ms:
                    worst = max(worst, (steps[1] - deadline) / 1000)
        return worst

    async def count_in_flight(self) -> None:
        self.in_flight += await in_flight(self.redis, self.aid, self.rids)

    async def _deliveries(self) -> tuple[dict, dict, dict, dict, dict]:
        """Per resident: state, when it ended (s), attempts claimed, sends claimed, and each step's first claim (ms)."""
        states, ended, attempts, sends, claims = {}, {}, {}, {}, {}
        for start in range(0, self.n, 1000):
            pipe = self.redis.pipeline(transaction=False)
            for rid in self.rids[start:start + 1000]:
                pipe.hmget(keys.delivery(self.aid, rid), "s", "e", "h", "p")
            for rid, (state, at, history, plan) in zip(self.rids[start:start + 1000], await pipe.execute()):
                states[rid] = (state or b"").decode()
                ended[rid] = int(at) / 1000 if at else None
                lines = history_lines(history)
                steps = {}
                for line in lines:
                    at_ms, k, _, _, status, *_ = line.split("|")
                    if status == "claimed":
                        steps.setdefault(int(k), int(at_ms))
                attempts[rid], claims[rid] = len(claimed_attempts(lines)), steps
                sends[rid] = claimed_sends(plan, lines)
        return states, ended, attempts, sends, claims

    async def _judge(self) -> None:
        records = self.records_before + await self.s.simulator_records(self.http)
        mine = [r for r in records if r["resident"] in self._rid_set]
        states, ended, attempts, sends, claims = await self._deliveries()
        twice = duplicated_sends(mine, sends)
        duplicated = sum(twice.values())
        lost = sum(1 for s in states.values() if s not in TERMINAL)
        # A send created a second after the resident was confirmed is a contact too many.
        again = {r["resident"] for r in mine if states[r["resident"]] == "confirmed"
                 and ended[r["resident"]] is not None and r["created_at"] > ended[r["resident"]] + 1}
        # The step's deadline runs from its claim, a moment before the text reaches the simulator:
        # a call more than EARLY_S before the text's time plus the step's timeout is a timer fired early.
        # The first text: a retry inside the step does not move its deadline.
        sms_at: dict[str, float] = {}
        for r in mine:
            if r["channel"] == "sms":
                sms_at[r["resident"]] = min(r["created_at"], sms_at.get(r["resident"], r["created_at"]))
        early = sum(1 for r in mine if r["channel"] == "voice" and r["resident"] in sms_at
                    and r["created_at"] < sms_at[r["resident"]] + SMS_TIMEOUT_S - EARLY_S)
        self.lost, self.duplicated = lost, duplicated
        self.max_lag_s = max(self.watch.max_lag_s, self._escalation_lag_s(claims))
        self.calls = sum(1 for r in mine if r["channel"] == "voice")
        self.contacted_again, self.early_calls = len(again), early
        self.retries = sum(attempts.values()) - sum(1 for steps in claims.values() for _ in steps)
        if twice:
            self.notes.append("sent more often than claimed, e.g. " + "; ".join(
                f"{rid}: " + ", ".join(f"{r['channel']} at {r['created_at'] - self.started:.1f}s"
                                       for r in mine if r["resident"] == rid)
                for rid in list(twice)[:3]))
        self.notes += [
            f"states {dict(Counter(states.values()))}; in flight at the fault {self.in_flight}; "
            f"duplicated {duplicated}" + (" (more than in flight!)" if duplicated > self.in_flight else "")
            + f"; retries after a failed attempt {self.retries}",
            f"contacted again after confirming: {len(again)}; voice calls before the SMS step's timeout: {early}",
            *self.watch.metrics[:6],
        ]

    @property
    def _rid_set(self) -> set[str]:
        return set(self.rids)


# Judging duplicates, for this drill and the provider storms (tests/e2e/stormkit.py).

def claimed_attempts(lines: list[str]) -> set[tuple[int, int]]:
    """(step, attempt) of every attempt a delivery's history says was claimed for sending."""
    tried = set()
    for line in lines:
        _, k, n, _, status, *_ = line.split("|")
        if status == "claimed":
            tried.add((int(k), int(n)))
    return tried


def claimed_sends(plan: bytes | str | None, lines: list[str]) -> int:
    """Sends the gateway claimed for one delivery: one per leg of each attempt claimed."""
    steps = orjson.loads(plan) if plan else []
    return sum(len(steps[k]["l"]) if k < len(steps) else 1 for k, _ in claimed_attempts(lines))


def duplicated_sends(records: list[dict], claimed: dict[str, int]) -> dict[str, int]:
    """Per resident, sends beyond one per attempt the gateway claimed: the
    simulator's records against the deliveries' histories.  A retry after a
    failed attempt is an attempt of its own; a duplicate is a send repeated
    after a crash, or one never recorded."""
    sends = Counter(r["resident"] for r in records if r["resident"] in claimed)
    return {rid: n - claimed[rid] for rid, n in sends.items() if n > claimed[rid]}


# The faults. Each starts when a quarter of the texts are out and returns when it has ended.

async def kill_worker(run: Run) -> None:
    run.s.kill("worker1")
    await run.count_in_flight()
    await asyncio.sleep(2)
    run.s.start("worker1")


async def kill_pump(run: Run) -> None:
    run.s.kill("pump")
    await asyncio.sleep(PUMP_DOWN_S)
    run.s.start("pump")


async def kill_api(run: Run) -> None:
    """While alerts are posted (the agency retries with its Idempotency-Key) and webhooks arrive."""
    # The alerts posted meanwhile go to a resident outside the drill's city.
    async with run.http.put(f"{run.s.api}/v1/residents/x-extra", headers=run.auth, json={
            "id": "x-extra", "languages": ["ko"], "district": "11140",
            "contacts": [{"type": "phone", "number": "+821099999999", "handset": "feature_phone"}]}) as r:
        assert r.status in (200, 201), await r.text()
    run.s.kill("api")
    extra = {**ALERT, "audience": {"residents": ["x-extra"]}, "event": "Flood update"}
    refused = 0
    for _ in range(10):
        try:
            async with run.http.post(f"{run.s.api}/v1/alerts", json=extra,
                                     headers={**run.auth, "Idempotency-Key": "k1"}):
                pass
        except aiohttp.ClientError:
            refused += 1
        await asyncio.sleep(0.5)
    run.s.start("api")
    ids = set()
    for _ in range(2):
        async with run.http.post(f"{run.s.api}/v1/alerts", json=extra,
                                 headers={**run.auth, "Idempotency-Key": "k1"}) as r:
            ids.add((await r.json())["id"] if r.status == 202 else r.status)
    run.notes.append(f"posts refused while the API was down: {refused}; after it: one alert ({ids})")


async def kill_simulator(run: Run) -> None:
    run.records_before = await run.s.simulator_records(run.http)
    run.s.kill("simulator")
    await run.count_in_flight()
    await asyncio.sleep(3)
    run.s.start("simulator")
    await run.s.teach_simulator(run.http, run.behaviours)


async def redis_sigkill_restart(run: Run) -> None:
    await run.count_in_flight()
    run.s.kill("redis")
    await asyncio.sleep(2)
    run.s.start("redis")


async def redis_unreachable(run: Run) -> None:
    await run.count_in_flight()
    run.s.pause("redis")
    await asyncio.sleep(REDIS_UNREACHABLE_S)
    run.s.resume("redis")


async def redis_link_down(run: Run) -> None:
    """Redis's host drops off the network (ProcessStack(redis_apart=True)): unlike
    a SIGSTOP, connections hang and new ones time out; each process must notice
    and connect again once the link is back."""
    await run.count_in_flight()
    run.s.data.link(up=False)
    await asyncio.sleep(REDIS_UNREACHABLE_S)
    run.s.data.link(up=True)


async def broker_restart(run: Run) -> None:
    run.s.terminate("broker")
    await asyncio.sleep(3)
    run.s.start("broker")


async def clock_off(run: Run) -> None:
    """The clock is off for the whole run: the fault is already there."""
