"""A drill over the real stack: every channel a volunteer is reached on says
"this is a drill" first, in their language; nobody else is reached."""

from __future__ import annotations

import re

import pytest
from stackkit import heat_wave

from channels.notices import words_for
from gateway.samples import phone

pytestmark = pytest.mark.e2e

FAST = {"push": 3, "sms": 3, "voice": 8}


def volunteer(rid: str, *contacts, languages=("ko",)) -> dict:
    return {"id": rid, "name": f"Resident {rid}", "languages": list(languages), "district": "11110",
            "contacts": list(contacts), "consent": {"drills": True}}


def drill_line(language: str) -> str:
    words = words_for(language)
    return f"[{words['drill_tag']}] {words['drill']}"


async def test_a_drill_says_so_first_on_every_channel_in_the_residents_language(city):
    token = "fcm:dp1:APA91b-sim-token-0123456789"
    await city.add(volunteer("dp1", {"type": "fcm", "token": token}),
                   {"fcm_tokens": [token], "push": {"ack": False}})
    await city.add(volunteer("ds1", phone("+821055540001", "smartphone"), languages=("vi",)),
                   {"phones": ["+821055540001"], "sms": {"outcome": "delivered"}})
    await city.add(volunteer("dv1", phone("+8227540001", "landline"), languages=("en",)),
                   {"phones": ["+8227540001"], "voice": {"answer": "human", "press": ["1"]}})
    await city.add({**volunteer("nd1", phone("+821055540002", "feature_phone")), "consent": {"drills": False}},
                   {"phones": ["+821055540002"]})
    alert = heat_wave({"residents": ["dp1", "ds1", "dv1", "nd1"]}, status="Exercise",
                      policy={"step_timeouts": FAST, "channels": ["push", "sms", "voice"]})
    alert["content"]["vi"] = {"headline": "Cảnh báo nắng nóng", "body": "Hôm nay nhiệt độ lên tới 38 độ.",
                              "instruction": "Uống nhiều nước."}
    aid = await city.post_alert(alert)
    summary = await city.settled(aid, timeout=60)
    assert summary["drill"] == "Exercise" and summary["targeted"] == 3
    assert city.received("nd1") == []

    push = [r for r in city.received("dp1") if r["channel"] == "push"][0]
    assert push["payload"]["title"].startswith("[훈련] ")
    assert push["text"].splitlines()[1] == drill_line("ko")

    sms = [r for r in city.received("ds1") if r["channel"] == "sms"][0]
    assert sms["text"].splitlines()[0] == drill_line("vi")

    call = [r for r in city.received("dv1") if r["channel"] == "voice"][0]
    first = [h for h in call["heard"] if "text" in h][0]
    assert first["language"] == "en-US" and first["text"].startswith(words_for("en")["drill"])

    # The page the text message links to says it too, before the alert.
    link = re.search(r"https?://\S+/m/\S+", sms["text"]).group(0)
    async with city.http.get(link) as r:
        page = await r.text()
    assert r.status == 200
    assert page.index(words_for("vi")["drill"]) < page.index("Cảnh báo nắng nóng</h1>")
