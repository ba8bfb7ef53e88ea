"""An operator follows one alert: how residents flowed, who is still unreached
and why, and what the operator does about it."""

from __future__ import annotations

import asyncio
import csv
import io

import orjson
import pytest

from gateway.console import auth, outcomes
from gateway.samples import phone, resident
from tests.console.town import csrf_of, heat_wave, sign_in

EVIL_NAME = "=HYPERLINK(\"http://x\")"


@pytest.fixture
async def street(town):
    """Six neighbours, one alert: each ends up somewhere else."""
    await town.add(
        resident("ok1", phone("+821055500001"), name="Kim Ok"),
        resident("fb1", phone("+821055500002", "smartphone"), name="Lee Fallback"),
        resident("nc1", name="Park Nocontact"),
        resident("alone", phone("+821055500003"), name="Choi Alone", needs=["lives_alone"]),
        resident("wait1", phone("+821055500004"), name="Jung Waiting"),
        resident("evil", phone("+821055500005"), name=EVIL_NAME),
    )
    town.sms.script.update({"ok1": "delivered", "fb1": "failed", "alone": "failed", "evil": "failed", "wait1": "sent"})
    town.voice.script.update({"fb1": "delivered", "alone": "failed", "evil": "failed"})
    aid = await town.post_alert(heat_wave({"residents": ["ok1", "fb1", "nc1", "alone", "wait1", "evil"]}))
    return aid


async def test_the_flow_shows_where_each_resident_went(town, street):
    flow = await outcomes.scan(town.redis, street)
    sms, voice = flow.stages[(0, "sms")], flow.stages[(1, "voice")]
    assert (sms.entered, sms.confirmed, sms.onward, sms.waiting) == (5, 1, 3, 1)
    assert (voice.entered, voice.confirmed, voice.ended) == (3, 1, 2)
    assert flow.links[(0, "sms", "voice")] == 3
    assert flow.unstarted == {"unreachable": 1}
    assert set(flow.ttc) == {"sms", "voice"}


async def test_the_alert_page_names_who_is_unreached_why_and_what_next(town, client, street):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get(f"/ops/alerts/{street}")).text()
    unreached = page[page.index('id="unreached-h"'):]
    for name in ("Choi Alone", "Jung Waiting", "Park Nocontact"):
        assert name in unreached
    assert "Kim Ok" not in unreached and "Lee Fallback" not in unreached
    assert "step 1 sms: failed (30003)" in unreached and "step 2 voice: failed (30003)" in unreached
    assert "no contact point any allowed channel can use" in unreached
    assert "step 1 of 2 on sms, then voice; answer due by" in unreached
    assert "⚑ Lives alone: visit needed" in unreached
    assert "<svg" in page and "Step 1 · sms · 5" in page and "Time to confirmation" in page
    assert "fake-sms" in page and "fake-voice" in page


async def test_the_welfare_filter_opens_only_residents_who_live_alone(town, client, street):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get(f"/ops/alerts/{street}?welfare=1")).text()
    unreached = page[page.index('id="unreached-h"'):]
    assert "Choi Alone" in unreached and "Jung Waiting" not in unreached


async def test_the_unreached_list_exports_as_csv_and_the_export_is_audited(town, client, street):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    r = await client.get(f"/ops/alerts/{street}/unreached.csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    by_id = {row["resident"]: row for row in rows}
    assert set(by_id) == {"nc1", "alone", "wait1", "evil"}
    assert by_id["alone"]["name"] == "Choi Alone" and by_id["alone"]["lives_alone"] == "yes"
    assert "step 2 voice: failed (30003)" in by_id["alone"]["why"]
    assert by_id["wait1"]["deadline"]
    assert by_id["evil"]["name"] == "'" + EVIL_NAME  # never a spreadsheet formula
    entry = (await auth.audit_log(town.redis))[0]
    assert (entry["who"], entry["action"], entry["target"]) == ("mina", "export unreached", street)


async def test_an_operator_records_a_welfare_visit(town, client, street):
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    r = await client.post(f"/ops/alerts/{street}/welfare", data={"csrf": await csrf_of(client), "resident": "alone",
                                                                 "note": "Fine, fan was broken"})
    page = await r.text()
    assert "Welfare visit to alone recorded" in page
    assert "✓ Visited</span> by jun" in page and "Fine, fan was broken" in page
    entry = (await auth.audit_log(town.redis))[0]
    assert (entry["action"], entry["target"]) == ("welfare visit done", f"{street}/alone")
    r = await client.post(f"/ops/alerts/{street}/welfare", data={"csrf": await csrf_of(client),
                                                                 "resident": "stranger"})
    assert "Not recorded" in await r.text()


async def test_reopening_the_unreachable_on_voice_reaches_them_in_the_same_alert(town, client):
    await town.add(resident("t1", phone("+821055500011"), name="Han Textonly"),
                   resident("t2", phone("+821055500012"), name="Yoon Textonly"),
                   resident("nc2", name="Kang Nocontact"))
    town.sms.script.update({"t1": "failed", "t2": "failed"})
    town.voice.script.update({"t1": "delivered", "t2": "failed"})
    aid = await town.post_alert(heat_wave({"residents": ["t1", "t2", "nc2"]},
                                          policy={"confirmation": "delivered", "channels": ["sms"]}))
    assert (await town.summary(aid))["deliveries"]["unreachable"] == 3
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    r = await client.post(f"/ops/alerts/{aid}/reopen", data={"csrf": await csrf_of(client), "channel": "any"})
    assert "Reopened 2 residents on any channel. 1 have nothing left to try on any channel." in await r.text()
    await town.dispatch.settle()
    summary = await town.summary(aid)
    assert summary["targeted"] == 3 and summary["deliveries"]["confirmed"] == 1
    assert summary["deliveries"]["unreachable"] == 2  # t2's call failed too; nc2 has nothing to try
    assert (await town.delivery(aid, "t1"))["y"] == "voice:delivered"
    assert [rid for rid, _ in town.voice.sent] == ["t1", "t2"]
    page = await (await client.get(f"/ops/alerts/{aid}")).text()
    assert "2 deliveries reopened by an operator" in page
    assert "step 2 voice: failed (30003)" in page[page.index('id="unreached-h"'):]
    entry = (await auth.audit_log(town.redis))[0]
    assert entry["action"] == "reopen unreached" and "2 residents on any channel" in entry["detail"]
    # Clicking again tries nothing new: voice and SMS were both tried.
    r = await client.post(f"/ops/alerts/{aid}/reopen", data={"csrf": await csrf_of(client), "channel": "any"})
    assert "Reopened 0 residents" in await r.text()
    await town.dispatch.settle()
    assert len(town.voice.sent) == 2


async def test_reopening_again_on_a_channel_already_tried_calls_once_more(town, client, street):
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    town.voice.script.update({"alone": "delivered"})
    csrf = await csrf_of(client)
    r = await client.post(f"/ops/alerts/{street}/reopen", data={"csrf": csrf, "channel": "voice"})
    assert "Reopened 0 residents on voice." in await r.text()
    calls = len(town.voice.sent)
    r = await client.post(f"/ops/alerts/{street}/reopen", data={"csrf": csrf, "channel": "voice", "again": "1"})
    assert "Reopened 2 residents on voice." in await r.text()  # nc1 has no phone at all
    await town.dispatch.settle()
    assert sorted(rid for rid, _ in town.voice.sent[calls:]) == ["alone", "evil"]
    assert (await town.delivery(street, "alone"))["s"] == "confirmed"
    assert (await town.summary(street))["targeted"] == 6


async def test_a_reopen_on_a_channel_the_gateway_lacks_is_refused(town, client, street):
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    r = await client.post(f"/ops/alerts/{street}/reopen", data={"csrf": await csrf_of(client), "channel": "mail"})
    assert "Not reopened: mail is not available" in await r.text()
    assert (await town.delivery(street, "alone"))["s"] == "unreachable"


async def test_a_cancelled_alert_is_not_reopened(town, client, street):
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    await client.post(f"/ops/alerts/{street}/cancel", data={"csrf": await csrf_of(client)})
    await town.dispatch.settle()
    r = await client.post(f"/ops/alerts/{street}/reopen", data={"csrf": await csrf_of(client), "channel": "voice",
                                                                "again": "1"})
    assert "Not reopened: the alert has been cancelled" in await r.text()
    assert (await town.delivery(street, "alone"))["s"] == "unreachable"


async def test_live_progress_streams_each_alert_summary(town, client, street):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    r = await client.get(f"/ops/live?alert={street}&alert=al_missing")
    assert r.headers["Content-Type"] == "text/event-stream"
    seen = b""
    while seen.count(b"event: summary") < 2:
        seen += await asyncio.wait_for(r.content.readany(), 5)
    first = seen.split(b"event: summary\ndata: ")[1].split(b"\n\n")[0]
    summary = orjson.loads(first)
    assert summary["id"] == street and summary["deliveries"]["confirmed"] == 2
    r.close()


async def test_the_alerts_list_and_provider_health(town, client, street):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    alerts = await (await client.get("/ops/alerts")).text()
    assert "Heat wave" in alerts and f'data-live="{street}"' in alerts
    health = await (await client.get("/ops/providers")).text()
    assert "fake-sms" in health and "fake-voice" in health
    # sms: 5 attempts, 3 failed; voice: 3 attempts, 2 failed
    assert "60.0%" in health and "66.7%" in health


async def test_an_operator_pages_back_through_older_alerts(town, client, monkeypatch):
    monkeypatch.setattr("gateway.console.views.ALERTS_SHOWN", 5)
    await town.add(resident("ok1", phone("+821055500001")))
    events = [f"Drill {i:02d}" for i in range(12)]
    for event in events:  # posted oldest first
        await town.post_alert({**heat_wave({"residents": ["ok1"]}), "event": event})
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")

    def shown(page: str) -> list[str]:
        return [e for e in events if f">{e}</a>" in page]

    first = await (await client.get("/ops/alerts")).text()
    assert shown(first) == events[7:] and "Page 1 of 3" in first and 'href="?page=2"' in first
    assert "Previous page" not in first
    last = await (await client.get("/ops/alerts?page=3")).text()
    assert shown(last) == events[:2] and 'href="?page=2"' in last and "Next page" not in last
    # A page past the end shows the last; one that is not a number shows the first.
    assert shown(await (await client.get("/ops/alerts?page=99")).text()) == events[:2]
    assert shown(await (await client.get("/ops/alerts?page=x")).text()) == events[7:]


async def test_the_unreached_list_pages_keep_the_welfare_filter(town, client, street, monkeypatch):
    monkeypatch.setattr("gateway.console.views.ROWS_PER_PAGE", 1)
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get(f"/ops/alerts/{street}?page=2")).text()
    assert 'href="?page=1#unreached-h">Previous page' in page and 'href="?page=3#unreached-h">Next page' in page
    await town.add(resident("alone2", phone("+821055500009"), name="Han Alone", needs=["lives_alone"]))
    town.sms.script["alone2"] = "failed"
    town.voice.script["alone2"] = "failed"
    aid = await town.post_alert(heat_wave({"residents": ["alone", "alone2"]}))
    page = await (await client.get(f"/ops/alerts/{aid}?welfare=1")).text()
    assert "Page 1 of 2" in page and 'href="?page=2&amp;welfare=1#unreached-h">Next page' in page


async def test_an_unknown_alert_is_a_plain_not_found_page(town, client):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    r = await client.get("/ops/alerts/al_nothing")
    assert r.status == 404 and "No such alert" in await r.text()


async def test_operators_see_the_sms_traffic_move_off_a_failing_provider(town, client):
    from channels.routing import Router

    router = Router(town.redis, "sms", {"twilio": 1.0, "kannel": 0.0})
    await router.refresh()  # publishes the first split: everything to Twilio
    router.record("twilio", sent=40, failed=40)  # Twilio starts failing
    router.record("kannel", sent=40, delivered=40)
    await router.flush()
    await router.refresh()
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get("/ops/providers")).text()
    assert "Current SMS traffic split" in page
    assert "kannel" in page and "Latest switches" in page


async def test_a_drill_is_marked_as_a_drill_in_the_alert_list_and_on_its_page(town, client):
    await town.add(resident("v1", phone("+821055500021")), resident("v2", phone("+821055500022")))
    real = await town.post_alert(heat_wave({"residents": ["v1"]}))
    drill = await town.post_alert(heat_wave({"residents": ["v2"]}, status="Exercise"))
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    listing = await (await client.get("/ops/alerts")).text()
    rows = {}
    for aid in (real, drill):
        at = listing.index(f'href="/ops/alerts/{aid}"')
        rows[aid] = listing[listing.rindex("<tr>", 0, at):listing.index("</tr>", at)]
    assert "DRILL (Exercise)" in rows[drill] and "DRILL" not in rows[real]
    page = await (await client.get(f"/ops/alerts/{drill}")).text()
    assert "<title>DRILL: Heat wave" in page and "This is a drill (CAP status Exercise), not a real alert" in page
    assert "DRILL" not in await (await client.get(f"/ops/alerts/{real}")).text()
