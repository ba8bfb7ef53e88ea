"""Contact data that goes stale silently: each contact point's last
confirmation, the reach report's count of residents with nothing fresher,
and the "is this still your number?" campaign that refreshes it."""

from __future__ import annotations

import orjson

from gateway import contact_ages, keys
from gateway.console import reach
from gateway.samples import phone, resident
from gateway.transitions import now_ms
from tests.console.town import heat_wave

JONGNO, JUNG = "11110", "11140"
YEAR_MS = 366 * contact_ages.DAY_MS


async def age(town, rid: str, index: int, by_ms: int) -> None:
    """Make a contact point's proof `by_ms` older, as if time had passed."""
    lc = orjson.loads(await town.redis.hget(keys.resident(rid), "lc"))
    lc[index][1] -= by_ms
    await town.redis.hset(keys.resident(rid), "lc", orjson.dumps(lc))


async def confirmed_at(town, rid: str) -> list[int]:
    return contact_ages.ages_ms(await town.redis.hget(keys.resident(rid), "lc"))


async def test_a_delivery_confirmed_on_a_number_makes_that_number_fresh(town):
    await town.add(resident("a", phone("+821055500001"), phone("+821055500002")))
    await age(town, "a", 0, YEAR_MS)
    await age(town, "a", 1, YEAR_MS)
    town.sms.script["a"] = "delivered"
    before = now_ms()
    await town.post_alert(heat_wave({"residents": ["a"]}))
    first, second = await confirmed_at(town, "a")
    assert first >= before  # the SMS to the first number confirmed
    assert second < before - YEAR_MS + 60_000  # the second was not used: as old as it was


async def test_an_agency_sending_the_same_number_again_keeps_its_age_and_a_new_one_starts_fresh(town):
    await town.add(resident("b", phone("+821055500003")))
    await age(town, "b", 0, YEAR_MS)
    old = (await confirmed_at(town, "b"))[0]
    await town.add(resident("b", phone("+821055500003"), phone("+821055500004")))
    kept, new = await confirmed_at(town, "b")
    assert kept == old and new > old + YEAR_MS - 60_000
    first, second = (await town.registry.get("b"))["contacts_confirmed_at"]
    assert first.endswith("Z") and first < second  # ISO 8601, as GET /v1/residents/{id} shows them


async def test_the_reach_report_counts_per_district_residents_whose_only_contact_point_is_stale(town):
    await town.add(resident("only", phone("+821055500011")),
                   resident("mixed", phone("+821055500012"), phone("+821055500013")),
                   resident("fresh", phone("+821055500014")),
                   resident("far", phone("+821055500015"), district=JUNG))
    for rid in ("only", "mixed", "far"):
        await age(town, rid, 0, YEAR_MS)
    by = {d["district"]: d for d in (await reach.report(town.redis, town.engine.specs(), stale_days=365))["districts"]}
    assert by[JONGNO]["unconfirmed"] == {"residents_only_stale": 1, "contact_points": {"phone": 2}}
    assert by[JUNG]["unconfirmed"] == {"residents_only_stale": 1, "contact_points": {"phone": 1}}
    # With a longer threshold nothing is stale yet.
    await town.redis.delete(keys.reach("all"))
    by = {d["district"]: d for d in (await reach.report(town.redis, town.engine.specs(), stale_days=400))["districts"]}
    assert by[JONGNO]["unconfirmed"]["residents_only_stale"] == 0


async def test_a_reverification_asks_only_stale_numbers_and_one_key_makes_them_fresh(town, client):
    await town.add(resident("s1", phone("+821055500021"), phone("+821055500022"), languages=("vi",)),
                   resident("s2", phone("+821055500023")),
                   {**resident("s3", phone("+821055500024")), "consent": {"non_emergency": False}},
                   resident("s4", phone("+821055500025"), district=JUNG))
    for rid in ("s1", "s3", "s4"):
        await age(town, rid, 0, YEAR_MS)  # s1's second number is fresh; s2 has nothing stale
    auth = {"Authorization": f"Bearer {town.agency_key}"}
    r = await client.post("/v1/residents/reverify", json={"districts": [JONGNO]}, headers=auth)
    assert r.status == 202, await r.text()
    body = await r.json()
    assert body["residents"] == 2  # s1 and s3; s4 lives elsewhere
    await town.dispatch.settle()
    aid = body["id"]
    alert = orjson.loads(await town.redis.hget(keys.alert(aid), "doc"))
    assert alert["severity"] == "Minor" and alert["purpose"] == "reverify"
    assert alert["content"]["vi"]["headline"] == "Đây vẫn là số của bạn chứ?"
    # Only the stale number is asked, in the resident's language; an opted-out resident is not asked.
    assert town.sms.sent == [("s1", "vi")]
    assert (await town.delivery(aid, "s1"))["p"] == b'[{"l":[["sms",0]],"t":300},{"l":[["voice",0]],"t":600}]'.decode()
    assert (await town.delivery(aid, "s3"))["s"] == "opted_out"
    # Delivered is not enough: the campaign waits for the resident's "1".
    assert (await town.delivery(aid, "s1"))["s"] == "in_progress"
    assert await town.report(aid, "s1", "acknowledged") == "confirmed"
    assert (await confirmed_at(town, "s1"))[0] > now_ms() - 60_000
    # Asked again: s1 has nothing stale any more.
    r = await client.post("/v1/residents/reverify", json={"districts": [JONGNO]}, headers=auth)
    assert (await r.json())["residents"] == 1


async def test_a_reverification_outside_the_agencys_area_is_refused_naming_the_field(town, client):
    from gateway.agencies import create_agency

    _, key = await create_agency(town.redis, "Jung-gu office", districts=[JUNG])
    r = await client.post("/v1/residents/reverify", json={"districts": [JONGNO], "all": True},
                          headers={"Authorization": f"Bearer {key}"})
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert {e["field"] for e in (await r.json())["errors"]} == {"/all"}
    r = await client.post("/v1/residents/reverify", json={"districts": [JONGNO]},
                          headers={"Authorization": f"Bearer {key}"})
    assert r.status == 422 and [e["field"] for e in (await r.json())["errors"]] == ["/districts"]
    assert not await town.redis.zcard(keys.ALERTS)


async def test_the_console_reach_page_shows_who_has_only_unconfirmed_contacts(town, client):
    from tests.console.town import sign_in

    await town.add(resident("only", phone("+821055500031")), resident("fresh", phone("+821055500032")))
    await age(town, "only", 0, YEAR_MS)
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get("/ops/reach")).text()
    assert "unconfirmed for 365 days" in page and "residents with only unconfirmed contacts" in page
    row = page[page.index('<th scope="row">11110</th>'):]
    row = row[:row.index("</tr>")]
    assert row.endswith('<td>1 phone</td>\n    <td class="num">1</td>')
