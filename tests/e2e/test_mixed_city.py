"""1,000 residents of mixed profiles each end where their profile says.

Real Redis, a real Celery worker, the twilio library against the simulator.
For each profile: the final state, the confirming channel, and the exact
channels the simulator saw, in order; no resident gets a step twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.api.http import STATE
from tests.letter_fonts import needs_letter_fonts

pytestmark = [pytest.mark.e2e, needs_letter_fonts]  # some residents have only paper mail

# Short, but with room for a loaded two-core machine: a callback processed after
# the deadline is late by design and moves nothing.
TIMEOUTS = {"push": 4, "sms": 8, "voice": 10, "mail": 4}


@dataclass(frozen=True)
class Profile:
    name: str
    contacts: tuple  # ("fcm" | "smartphone" | "feature_phone" | "landline", ...)
    needs: tuple
    behaviour: dict
    # (final state, confirming channel or None, channels received in order)
    expect_with_push: tuple
    expect_without_push: tuple


PROFILES = [
    Profile("smartphone, taps the app", ("fcm", "smartphone"), (),
            {"push": {"ack": True, "ack_after_s": 1}, "sms": {"outcome": "delivered"}},
            ("confirmed", "push", ["push"]), ("confirmed", "sms", ["sms"])),
    Profile("smartphone, ignores the app", ("fcm", "smartphone"), (),
            {"push": {"ack": False}, "sms": {"outcome": "delivered"}},
            ("confirmed", "sms", ["push", "sms"]), ("confirmed", "sms", ["sms"])),
    Profile("feature phone", ("feature_phone",), (), {"sms": {"outcome": "delivered"}},
            ("confirmed", "sms", ["sms"]), ("confirmed", "sms", ["sms"])),
    Profile("feature phone switched off, answers the call", ("feature_phone",), (),
            {"sms": {"outcome": "undelivered", "error_code": 30003}, "voice": {"answer": "human", "press": ["1"]}},
            ("confirmed", "voice", ["sms", "voice"]), ("confirmed", "voice", ["sms", "voice"])),
    Profile("landline only", ("landline",), (), {"voice": {"answer": "human", "press": ["1"]}},
            ("confirmed", "voice", ["voice"]), ("confirmed", "voice", ["voice"])),
    Profile("landline always busy", ("landline",), (), {"voice": {"answer": "busy"}},
            ("unreachable", None, ["voice"]), ("unreachable", None, ["voice"])),
    Profile("blind smartphone user", ("fcm", "smartphone"), ("blind",),
            {"push": {"ack": False}, "voice": {"answer": "human", "press": ["1"]}},
            ("confirmed", "voice", ["push", "voice"]), ("confirmed", "voice", ["voice"])),
    Profile("deaf, phone switched off", ("feature_phone",), ("deaf",),
            {"sms": {"outcome": "undelivered", "error_code": 30003}, "voice": {"answer": "human", "press": ["1"]}},
            ("unreachable", None, ["sms"]), ("unreachable", None, ["sms"])),
    Profile("no contact at all", (), (), {}, ("unreachable", None, []), ("unreachable", None, [])),
    Profile("answering machine", ("landline",), ("elderly",), {"voice": {"answer": "machine"}},
            ("unreachable", None, ["voice"]), ("unreachable", None, ["voice"])),
]


def person(i: int, profile: Profile) -> tuple[dict, dict]:
    rid = f"m{i:04d}"
    contacts, addresses = [], {"phones": [], "fcm_tokens": []}
    for kind in profile.contacts:
        if kind == "fcm":
            token = f"fcm-token-{rid}-abcdef"
            contacts.append({"type": "fcm", "token": token})
            addresses["fcm_tokens"].append(token)
        else:
            number = f"+8227{i:06d}" if kind == "landline" else f"+821055{i:06d}"
            contacts.append({"type": "phone", "number": number, "handset": kind})
            addresses["phones"].append(number)
    doc = {"id": rid, "name": f"{profile.name} #{i}", "languages": ["ko", "en"], "district": "11110",
           "contacts": contacts}
    if profile.needs:
        doc["needs"] = list(profile.needs)
    return doc, {"resident": rid, **addresses, **profile.behaviour}


async def test_a_thousand_residents_each_end_on_the_path_their_profile_implies(city):
    people = [(i, PROFILES[i % len(PROFILES)]) for i in range(1000)]
    docs = [person(i, p) for i, p in people]
    await city.import_ndjson([d for d, _ in docs], [b for _, b in docs])
    has_push = "push" in city.app[STATE]["engine"].channels

    aid = await city.post_alert({
        "event": "Heat wave", "severity": "Moderate",
        "content": {"ko": {"headline": "폭염 경보", "body": "오늘 38도까지 오릅니다."},
                    "en": {"headline": "Heat wave", "body": "38C today."}},
        "audience": {"districts": ["11110"]},
        "policy": {"channels": ["push", "sms", "voice"], "step_timeouts": TIMEOUTS},
    })
    summary = await city.settled(aid, timeout=240)

    assert summary["targeted"] == 1000
    assert summary["terminal"] == 1000
    assert sum(summary["deliveries"][s] for s in ("planned", "in_progress")) == 0

    wrong = Counter()
    for (i, profile), (doc, _) in zip(people, docs):
        state, channel, received = profile.expect_with_push if has_push else profile.expect_without_push
        path = await city.path(aid, doc["id"])
        got_channels = [r["channel"] for r in sorted(city.received(doc["id"]), key=lambda r: r["created_at"])]
        steps_sent = [(a["step"], a["attempt"], a["channel"]) for a in path["attempts"]]
        ok = (path["state"] == state
              and (path.get("confirmed_by") or {}).get("channel") == channel
              and got_channels[:len(received)] == received
              and set(got_channels) <= set(received)
              and len(steps_sent) == len(set(steps_sent)))
        if not ok:
            wrong[profile.name] += 1
            if wrong[profile.name] == 1:
                print(profile.name, path, got_channels)
    assert not wrong, f"residents off their expected path, by profile: {dict(wrong)}"
    # No step twice: each resident received each channel at most as often as the plan has attempts.
    assert not city.sim.records.duplicates
