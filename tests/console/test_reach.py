"""The reach report: who only one channel reaches, who none, what went stale, how fast people confirm."""

from __future__ import annotations

from datetime import datetime

from gateway.agencies import create_agency
from gateway.console import reach
from gateway.samples import phone, resident
from tests.console.town import heat_wave, sign_in

JONGNO, JUNG = "11110", "11140"


async def street_of_contacts(town) -> None:
    await town.add(
        resident("both", phone("+821055500001")),  # a feature phone: text and calls
        resident("line", phone("+8227250001", "landline")),
        resident("deaf", phone("+821055500002"), needs=["deaf"]),
        resident("none"),
        resident("stale", phone("+821055500003", "smartphone")),
        resident("deafline", phone("+8227250002", "landline"), needs=["deaf"], district=JUNG),
    )
    await town.registry.mark_dead("stale", 0)


async def test_each_district_splits_residents_by_the_channels_that_reach_them(town):
    await street_of_contacts(town)
    report = await reach.report(town.redis, town.engine.specs())
    by = {d["district"]: d for d in report["districts"]}
    assert by[JONGNO]["counts"] == {"several": 1, "push": 0, "sms": 1, "voice": 1, "mail": 0, "none": 2}
    assert by[JONGNO]["shares"]["none"] == 0.4
    assert by[JONGNO]["stale"] == {"residents": 1, "contact_points": {"phone": 1}}
    # A deaf resident with only a landline: nothing this gateway has can reach them.
    assert by[JUNG]["counts"]["none"] == 1


async def test_median_time_to_confirmation_by_channel_and_age_band(town):
    year = datetime.now().year
    await town.add(resident("old", phone("+821055500001"), birth_year=year - 80),
                   resident("young", phone("+821055500002"), birth_year=year - 30),
                   resident("mid", phone("+821055500003", "landline"), birth_year=year - 50))
    town.sms.script.update({"old": "delivered", "young": "delivered"})
    town.voice.script.update({"mid": "delivered"})
    await town.post_alert(heat_wave({"residents": ["old", "young", "mid"]}))
    times = (await reach.report(town.redis, town.engine.specs()))["time_to_confirmation"]
    assert times["alerts"] == 1
    assert times["by_channel"]["sms"]["confirmed"] == 2 and times["by_channel"]["voice"]["confirmed"] == 1
    assert set(times["by_age_band"]) == {"75 and over", "under 40", "40-64"}
    assert times["by_channel_and_age_band"]["sms"]["75 and over"]["median_s"] is not None


async def test_the_report_is_an_agency_api_limited_to_the_agency_area(town, client):
    await street_of_contacts(town)
    assert (await client.get("/v1/reports/reach")).status == 401
    r = await client.get("/v1/reports/reach", headers={"Authorization": f"Bearer {town.agency_key}"})
    assert r.status == 200
    assert {d["district"] for d in (await r.json())["districts"]} == {JONGNO, JUNG}
    _, key = await create_agency(town.redis, "Jung-gu office", districts=[JUNG])
    r = await client.get("/v1/reports/reach", headers={"Authorization": f"Bearer {key}"})
    assert [d["district"] for d in (await r.json())["districts"]] == [JUNG]
    spec = await (await client.get("/v1/openapi.json")).json()
    assert spec["paths"]["/v1/reports/reach"]["get"]["description"] == "Needs the scope `alerts:read`."


async def test_the_console_draws_reach_per_district(town, client):
    await street_of_contacts(town)
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get("/ops/reach")).text()
    assert "How residents can be reached, by district" in page
    assert f"District {JONGNO}: 20% several channels, 20% SMS only, 20% voice only, 40% not at all." in page
    assert "<th scope=\"row\">11140</th>" in page
