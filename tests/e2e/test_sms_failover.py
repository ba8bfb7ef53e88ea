"""Twilio goes down in the middle of an alert; residents never notice.

The second SMS provider is a real Kannel (Debian's bearerbox and smsbox)
bound over SMPP to the simulator's SMSC, which sends delivery receipts back
as an SMSC does; Kannel turns them into the delivery-report calls the
gateway gets.  Skipped where Kannel is not installed (`apt-get install kannel`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from channels.kannel import Kannel
from channels.routing import current_split
from gateway import keys
from simulator.smsc import KannelBoxes, Smsc, kannel_installed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not kannel_installed(), reason="Kannel (bearerbox, smsbox) is not installed"),
]

RESIDENTS = 600
# Twilio's sender number takes 200 SMS a second: the alert takes a few
# seconds to go out, long enough to pull the plug on Twilio half-way.
SENDER_RATE = 200


@pytest.fixture(scope="module")
def kannel(tmp_path_factory, stacks):
    data = tmp_path_factory.mktemp("sms-failover")
    boxes = KannelBoxes(data / "kannel", smsc_port=stacks.free_port(), inbound_url="")
    yield boxes
    boxes.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, stacks, kannel):
    s = stacks.start(tmp_path_factory.mktemp("gateway"),
                    KANNEL_SENDSMS_URL=kannel.sendsms_url, KANNEL_USERNAME=kannel.username,
                    KANNEL_PASSWORD=kannel.password, KANNEL_FROM="+821099990000",
                    GATEWAY_SMS_RATE_PER_SENDER=str(SENDER_RATE), GATEWAY_SMS_RATE_PER_PROVIDER="1000")
    kannel.inbound_url = Kannel(s.settings).inbound_url()
    kannel.start()
    yield s
    stacks.stop(s)


@pytest.fixture
async def smsc(city, kannel):
    """The carrier's SMSC behind Kannel, playing the same city as the simulator."""
    smsc = await Smsc(city.sim, port=kannel.smsc_port).start()
    deadline = time.monotonic() + 15
    while not smsc.bound():  # Kannel reconnects every second
        assert time.monotonic() < deadline, "Kannel did not bind to the SMSC"
        await asyncio.sleep(0.05)
    yield smsc
    await smsc.stop()


def feature_phone(i: int) -> tuple[dict, dict]:
    rid, number = f"f{i:04d}", f"+8210777{i:05d}"
    doc = {"id": rid, "name": f"Resident {rid}", "languages": ["ko"], "district": "11110",
           "contacts": [{"type": "phone", "number": number, "handset": "feature_phone"}]}
    return doc, {"resident": rid, "phones": [number], "sms": {"outcome": "delivered", "delay_s": 1.0}}


def typhoon(audience: dict) -> dict:
    return {
        "event": "Typhoon", "severity": "Moderate", "urgency": "Expected",
        "content": {"ko": {"headline": "태풍 주의보", "body": "오늘 밤 강풍과 폭우가 예상됩니다.",
                           "instruction": "외출을 자제하세요."}},
        "audience": audience,
        "policy": {"channels": ["sms"], "step_timeouts": {"sms": 120}},
    }


async def test_twilio_fails_mid_alert_and_every_resident_still_gets_one_sms(city, smsc):
    people = [feature_phone(i) for i in range(RESIDENTS)]
    await city.import_ndjson([d for d, _ in people], [b for _, b in people])
    aid = await city.post_alert(typhoon({"districts": ["11110"]}))

    # Twilio goes down once it has taken a quarter of the alert.
    deadline = time.monotonic() + 60
    while sum(1 for r in city.sim.records if r["provider"] == "twilio-sms") < RESIDENTS // 4:
        assert time.monotonic() < deadline, "Twilio never got a quarter of the alert"
        await asyncio.sleep(0.01)
    city.sim.faults.set({"twilio-sms": {"outage": "503"}})

    summary = await city.settled(aid, timeout=120)
    assert summary["deliveries"]["confirmed"] == RESIDENTS

    # Nobody noticed: each resident got exactly one SMS, on the first try.
    by_provider: Counter = Counter()
    for doc, _ in people:
        got = [r for r in city.received(doc["id"]) if r["status"] == "delivered"]
        assert len(got) == 1, (doc["id"], got)
        by_provider[got[0]["provider"]] += 1
    assert by_provider["twilio-sms"] >= RESIDENTS // 4
    assert by_provider["smsc"] >= RESIDENTS // 4
    assert not city.sim.records.duplicates
    retried = await city.redis.hget(keys.alert_counts(aid), "a:sms:failed")
    assert retried is None  # no attempt failed: the failover happened inside each send

    # Kannel's deliveries were proved by its delivery reports.
    path = await city.path(aid, next(doc["id"] for doc, _ in people
                                     if city.received(doc["id"])[-1]["provider"] == "smsc"))
    assert path["confirmed_by"] == {"channel": "sms", "level": "delivered"}
    assert path["attempts"][0]["provider"] == "kannel"

    # The console shows the switch: Kannel, on standby at 0, now carries traffic.
    # (The share moves in steps as health is re-read; how far it has moved depends on timing.)
    split = await current_split(city.redis)
    assert split["shares"]["kannel"] > 0
    assert any(s["from"].startswith("twilio=100") and "twilio:" in s["reason"] for s in split["switches"])


async def test_a_resident_who_replies_through_kannel_acknowledges_the_alert(city, smsc):
    await city.add({"id": "k1", "languages": ["ko"], "district": "11110",
                    "contacts": [{"type": "phone", "number": "+821077700001", "handset": "feature_phone"}]},
                   {"phones": ["+821077700001"], "sms": {"reply": "네", "reply_after_s": 1.0}})
    city.sim.faults.set({"twilio-sms": {"outage": "reset"}})
    alert = typhoon({"residents": ["k1"]})
    alert["severity"] = "Severe"  # needs an acknowledgement, not a receipt
    aid = await city.post_alert(alert)
    await city.settled(aid, timeout=30)
    path = await city.path(aid, "k1")
    assert path["confirmed_by"] == {"channel": "sms", "level": "acknowledged"}
    [sms] = city.received("k1")
    assert sms["provider"] == "smsc" and sms["replies"][0]["body"] == "네"
