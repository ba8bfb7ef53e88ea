"""Residents' phone numbers, addresses, names and push tokens are never at rest
in clear: not in any Redis key or value (the state and the broker), not in any
file the gateway keeps, after an import and an alert that used every channel.
The operators' unreached export shows names, never a contact point."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis as sync_redis
from test_app_push_delivery import browser_subscription

from gateway.console.auth import create_operator

pytestmark = pytest.mark.e2e

FAST = {"push": 3, "sms": 3, "voice": 6, "mail": 30}
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

RESIDENTS = [
    {"id": "sec1", "name": "정보호", "languages": ["ko"], "district": "11110",
     "contacts": [{"type": "fcm", "token": "fcm:sec1:APA91b-atrest-7f3c9e1d2b"},
                  {"type": "phone", "number": "010-5551-9001", "handset": "smartphone"}]},
    {"id": "sec2", "name": "Tran Thi Kin", "languages": ["vi", "ko"], "district": "11110", "needs": ["blind"],
     "contacts": [{"type": "phone", "number": "02-725-9002", "handset": "landline"}]},
    {"id": "sec3", "name": "박비밀", "languages": ["ko"], "district": "11110",
     "contacts": [{"type": "postal", "lines": ["은밀로 77, 303동 1102호", "서울특별시 종로구"], "postcode": "03188"}]},
    {"id": "sec4", "name": "Lee Hidden", "languages": ["en"], "district": "11110",
     "contacts": [{"type": "phone", "number": "010-5551-9004", "handset": "feature_phone"}]},
]
BEHAVIOURS = [
    {"resident": "sec1", "fcm_tokens": ["fcm:sec1:APA91b-atrest-7f3c9e1d2b"], "phones": ["+821055519001"],
     "push": {"ack": False}, "sms": {"outcome": "delivered", "reply": "도와주세요 집에 있어요", "reply_after_s": 0.5}},
    {"resident": "sec2", "phones": ["+8227259002"], "voice": {"answer": "human", "press": ["1"], "ring_s": 0.5}},
    {"resident": "sec3", "postal": ["03188|은밀로 77, 303동 1102호"], "mail": {"outcome": "posted", "after_s": 2}},
    {"resident": "sec4", "phones": ["+821055519004"], "sms": {"outcome": "failed", "error_code": 30006},
     "voice": {"answer": "failed"}},
]
# Every spelling in which a contact point or name could leak.
CONTACT_DATA = [
    "+821055519001", "1055519001", "5551-9001", "55519001", "+8227259002", "27259002", "725-9002",
    "+821055519004", "55519004", "5551-9004", "APA91b-atrest-7f3c9e1d2b", "은밀로 77", "303동 1102호",
    "정보호", "Tran Thi Kin", "박비밀", "Lee Hidden",
]
NAMES = {"Lee Hidden"}


def everything_in_redis(url: str) -> list[tuple[str, bytes]]:
    """(db/key, each name and value) of every key in every database: state and broker."""
    client = sync_redis.Redis.from_url(url)
    out = []
    for db in client.info("keyspace"):
        r = sync_redis.Redis.from_url(url, db=int(db.removeprefix("db")))
        for key in r.scan_iter(count=1000):
            kind = r.type(key).decode()
            values = {"string": lambda: [r.get(key)], "hash": lambda: [x for kv in r.hgetall(key).items() for x in kv],
                      "list": lambda: r.lrange(key, 0, -1), "set": lambda: list(r.smembers(key)),
                      "zset": lambda: list(r.zrange(key, 0, -1)),
                      "stream": lambda: [orjson.dumps({k.decode(): v.decode("latin-1") for k, v in e[1].items()})
                                         for e in r.xrange(key)]}.get(kind, lambda: [])()
            out += [(f"{db}/{key!r}", v or b"") for v in [key, *values]]
        r.close()
    client.close()
    return out


def leaks(where: str, raw: bytes, secrets: list[str]) -> list[str]:
    return [f"{where}: {s}" for s in secrets if s.encode() in raw]


async def test_no_contact_data_is_at_rest_in_clear_after_every_channel_was_used(city):
    browser, keys = browser_subscription(city.stack.sim_port, "atrest-sec5")
    web_user = {"id": "sec5", "name": "Web Reader", "languages": ["en"], "district": "11110", "contacts": [browser]}
    secrets = [*CONTACT_DATA, "atrest-sec5", browser["keys"]["p256dh"], browser["keys"]["auth"], "Web Reader"]
    await city.import_ndjson([*RESIDENTS, web_user],
                             [*BEHAVIOURS, {"resident": "sec5", **keys, "push": {"ack": True, "ack_after_s": 0.5}}])
    aid = await city.post_alert({
        "event": "Heat wave", "severity": "Moderate", "urgency": "Expected",
        "content": {"ko": {"headline": "폭염 경보", "body": "오늘 낮 기온이 38도까지 오릅니다."},
                    "en": {"headline": "Heat wave warning", "body": "Temperatures reach 38C today."},
                    "vi": {"headline": "Cảnh báo nắng nóng", "body": "Hôm nay nhiệt độ lên tới 38 độ."}},
        "audience": {"residents": [*(r["id"] for r in RESIDENTS), "sec5"]},
        "policy": {"step_timeouts": FAST}})
    await city.settled(aid, timeout=90)
    confirmed_by = {rid: (await city.path(aid, rid)).get("confirmed_by", {}).get("channel")
                    for rid in ("sec1", "sec2", "sec3", "sec4", "sec5")}
    assert confirmed_by == {"sec1": "sms", "sec2": "voice", "sec3": "mail", "sec4": None, "sec5": "push"}
    # Every channel had the contact points in hand: app and web push, SMS with a reply, a call, a letter.
    assert {r["channel"] for rid in confirmed_by for r in city.received(rid)} >= {"push", "sms", "voice", "mail"}

    found = [leak for where, raw in everything_in_redis(city.stack.urls.redis) for leak in leaks(where, raw, secrets)]
    assert found == []

    # Files the gateway keeps: logs, the Redis append-only file, the mail tray, the keys.
    # The print house's drop box gets letters in clear by design, so it is left out.
    data = Path(city.stack.settings.data_dir)
    printhouse = Path(city.stack.settings.printhouse)
    files = [p for p in data.rglob("*") if p.is_file() and printhouse not in p.parents]
    assert any(p.name.endswith(".aof") or "appendonly" in p.name for p in files)
    assert [leak for p in files for leak in leaks(str(p.relative_to(data)), p.read_bytes(), secrets)] == []

    # The operators' follow-up list names the unreached resident and says why, with no contact point.
    export = await unreached_csv(city, aid)
    [row] = list(csv.DictReader(io.StringIO(export)))
    assert row["resident"] == "sec4" and row["name"] == "Lee Hidden"
    assert [s for s in secrets if s in export and s not in NAMES] == []


async def unreached_csv(city, aid: str) -> str:
    await create_operator(city.redis, "auditor", "viewer", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        form = await (await browser.get(f"{city.api}/ops/login")).text()
        r = await browser.post(f"{city.api}/ops/login", data={
            "csrf": CSRF.search(form).group(1), "name": "auditor", "password": PASSWORD, "next": "/ops/alerts"})
        assert r.status == 200, await r.text()
        r = await browser.get(f"{city.api}/ops/alerts/{aid}/unreached.csv")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        return (await r.read()).decode("utf-8-sig")
