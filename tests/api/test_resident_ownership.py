"""The registry is shared by a city's agencies, but an agency reads, changes and
erases only the residents whose home lies in its area; to any other agency such a
resident does not exist. Every erasure is audited."""

from __future__ import annotations

import orjson
import pytest
from stackkit import call

from gateway import keys
from gateway.agencies import create_agency
from gateway.console.auth import audit_log

pytestmark = pytest.mark.e2e

# Jongno-gu (11110) and Jung-gu (11140), side by side in central Seoul.
JONGNO_HOME = {"lat": 37.5735, "lon": 126.9788}
JUNG_HOME = {"lat": 37.5641, "lon": 126.9979}
# A fire station's patch drawn as a polygon around Jung-gu's point only.
JUNG_PATCH = [[37.55, 126.98], [37.55, 127.01], [37.575, 127.01], [37.575, 126.98], [37.55, 126.98]]


def resident(district: str, home: dict, name: str = "박영자") -> dict:
    return {"languages": ["ko"], "district": district, "location": home, "name": name,
            "contacts": [{"type": "phone", "number": "02-725-0002", "handset": "landline"}]}


@pytest.fixture
async def town(city):
    """Two residents registered by the city-wide key; a district office, a
    neighbouring district's office and a fire station with a drawn patch."""
    assert (await call(city, "PUT", "/v1/residents/jongno-1", json=resident("11110", JONGNO_HOME)))[0] == 201
    assert (await call(city, "PUT", "/v1/residents/jung-1", json=resident("11140", JUNG_HOME)))[0] == 201
    _, jongno = await create_agency(city.redis, "Jongno-gu office", districts=["11110"])
    _, jung = await create_agency(city.redis, "Jung-gu office", districts=["11140"])
    _, fire = await create_agency(city.redis, "Jung fire station", areas=[JUNG_PATCH])
    return {"jongno": jongno, "jung": jung, "fire": fire}


async def stored(city, rid: str) -> dict:
    status, _, body = await call(city, "GET", f"/v1/residents/{rid}")
    assert status == 200
    return body


@pytest.mark.parametrize("outsider", ["jung", "fire"])
async def test_another_districts_or_agencys_key_finds_no_resident_outside_its_area(city, town, outsider):
    key = town[outsider]
    before = await stored(city, "jongno-1")
    for method, kw in (("GET", {}), ("PUT", {"json": resident("11110", JONGNO_HOME, "someone else")}),
                       ("DELETE", {})):
        status, ctype, body = await call(city, method, "/v1/residents/jongno-1", key=key, **kw)
        assert (status, ctype) == (404, "application/problem+json"), (method, body)
        assert "박영자" not in orjson.dumps(body).decode() and "+8227250002" not in orjson.dumps(body).decode()
    assert await stored(city, "jongno-1") == before


async def test_an_unknown_id_and_a_resident_elsewhere_answer_alike(city, town):
    _, _, elsewhere = await call(city, "GET", "/v1/residents/jongno-1", key=town["jung"])
    _, _, unknown = await call(city, "GET", "/v1/residents/nobody", key=town["jung"])
    assert elsewhere == unknown


async def test_an_agency_reads_replaces_and_erases_its_own_residents(city, town):
    status, _, body = await call(city, "GET", "/v1/residents/jongno-1", key=town["jongno"])
    assert status == 200 and body["name"] == "박영자"
    status, _, body = await call(city, "PUT", "/v1/residents/jongno-1", key=town["jongno"],
                                 json=resident("11110", JONGNO_HOME, "박영자 (moved flat)"))
    assert status == 200 and body["name"] == "박영자 (moved flat)"
    assert (await call(city, "DELETE", "/v1/residents/jongno-1", key=town["jongno"]))[0] == 204
    assert not await city.redis.exists(keys.resident("jongno-1"))


async def test_a_drawn_area_holds_the_residents_whose_home_lies_inside_it(city, town):
    status, _, body = await call(city, "GET", "/v1/residents/jung-1", key=town["fire"])
    assert status == 200 and body["district"] == "11140"


async def test_every_erasure_is_audited_with_the_agency_and_the_resident(city, town):
    assert (await call(city, "DELETE", "/v1/residents/jung-1", key=town["jung"]))[0] == 204
    assert (await call(city, "DELETE", "/v1/residents/jongno-1"))[0] == 204
    entries = [e for e in await audit_log(city.redis) if e["action"] == "erase resident"]
    assert [e["target"] for e in entries] == ["jongno-1", "jung-1"]  # newest first
    assert "Jung-gu office" in entries[1]["who"] and "Seoul Metropolitan Government" in entries[0]["who"]
    # A refused erasure erases nothing and is no erasure.
    assert (await call(city, "DELETE", "/v1/residents/jongno-1", key=town["jung"]))[0] == 404
    assert len([e for e in await audit_log(city.redis) if e["action"] == "erase resident"]) == 2


async def test_an_agency_cannot_register_a_resident_outside_its_area(city, town):
    status, _, body = await call(city, "PUT", "/v1/residents/new-1", key=town["jongno"],
                                 json=resident("11140", JUNG_HOME))
    assert status == 422 and [e["field"] for e in body["errors"]] == ["/district"]
    status, _, body = await call(city, "PUT", "/v1/residents/new-1", key=town["fire"],
                                 json=resident("11110", JONGNO_HOME))
    assert status == 422 and [e["field"] for e in body["errors"]] == ["/location"]
    assert not await city.redis.exists(keys.resident("new-1"))


async def test_an_agency_cannot_move_its_resident_out_of_its_area(city, town):
    status, _, body = await call(city, "PUT", "/v1/residents/jongno-1", key=town["jongno"],
                                 json=resident("11140", JUNG_HOME))
    assert status == 422 and body["errors"][0]["field"] == "/district"
    assert (await stored(city, "jongno-1"))["district"] == "11110"


async def test_an_import_outside_the_area_imports_nothing_and_names_each_line(city, town):
    lines = [orjson.dumps({"id": "mine", **resident("11110", JONGNO_HOME)}),
             orjson.dumps({"id": "theirs", **resident("11140", JUNG_HOME)}),
             orjson.dumps({"id": "jung-1", **resident("11110", JONGNO_HOME)})]
    status, _, body = await call(city, "POST", "/v1/residents/import", key=town["jongno"], data=b"\n".join(lines),
                                 headers={"Content-Type": "application/x-ndjson"})
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["line 2: /district", "line 3: /id"]
    assert not await city.redis.exists(keys.resident("mine"))
    assert (await stored(city, "jung-1"))["district"] == "11140"


async def test_a_home_beyond_the_maps_latitudes_is_named_not_a_server_error(city):
    status, ctype, body = await call(city, "PUT", "/v1/residents/polar", json=resident("11110", {"lat": 89, "lon": 0}))
    assert (status, ctype) == (422, "application/problem+json")
    assert [e["field"] for e in body["errors"]] == ["/location/lat"]
    assert not await city.redis.exists(keys.resident("polar"))
    line = orjson.dumps({"id": "polar", **resident("11110", {"lat": -86, "lon": 0})})
    status, _, body = await call(city, "POST", "/v1/residents/import", data=line,
                                 headers={"Content-Type": "application/x-ndjson"})
    assert status == 422 and body["errors"][0]["field"] == "line 1: /location/lat"


async def test_an_alert_area_beyond_the_maps_latitudes_is_named_not_a_server_error(city):
    alert = {"event": "Test", "severity": "Minor", "content": {"ko": {"headline": "시험", "body": "시험입니다."}},
             "audience": {"areas": [{"circle": {"lat": 89, "lon": 0, "radius_km": 5}}]}}
    status, _, body = await call(city, "POST", "/v1/audience/preview", json={"audience": alert["audience"]})
    assert status == 422 and "/audience/areas/0" in orjson.dumps(body).decode()
    status, _, body = await call(city, "POST", "/v1/alerts", json=alert)
    assert status == 422 and "/audience/areas/0" in orjson.dumps(body).decode()
    assert await city.redis.zcard(keys.ALERTS) == 0


@pytest.mark.parametrize("outsider", ["jung", "fire"])
async def test_another_agency_can_neither_import_over_nor_preview_a_resident_outside_its_area(city, town, outsider):
    line = orjson.dumps({"id": "jongno-1", **resident("11110", JONGNO_HOME, "someone else")})
    status, _, body = await call(city, "POST", "/v1/residents/import", key=town[outsider], data=line,
                                 headers={"Content-Type": "application/x-ndjson"})
    assert status == 422 and body["errors"][0]["field"] == "line 1: /id"
    assert (await stored(city, "jongno-1"))["name"] == "박영자"
    alert = {"event": "Heat", "severity": "Minor", "content": {"ko": {"headline": "폭염", "body": "물을 드세요."}}}
    _, _, elsewhere = await call(city, "POST", "/v1/alerts/preview", key=town[outsider],
                                 json={"alert": alert, "resident_id": "jongno-1"})
    _, _, unknown = await call(city, "POST", "/v1/alerts/preview", key=town[outsider],
                               json={"alert": alert, "resident_id": "nobody"})
    assert elsewhere["status"] == 422 and elsewhere == unknown


async def test_an_alert_naming_a_resident_outside_the_area_hears_what_an_unknown_id_hears(city, town):
    alert = {"event": "Welfare check", "severity": "Minor",
             "content": {"ko": {"headline": "안부 확인", "body": "괜찮으신가요?"}}}
    _, _, elsewhere = await call(city, "POST", "/v1/alerts", key=town["jung"],
                                 json={**alert, "audience": {"residents": ["jongno-1"]}})
    _, _, unknown = await call(city, "POST", "/v1/alerts", key=town["jung"],
                               json={**alert, "audience": {"residents": ["nobody"]}})
    assert elsewhere["status"] == 422 and elsewhere["errors"] == unknown["errors"]
