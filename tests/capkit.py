"""Helpers for the CAP, lifecycle, callback and polygon tests: samples with
today's times, residents placed on the map, posting CAP to a city."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from gateway.cap.vocabulary import format_cap_time

SAMPLES = Path(__file__).resolve().parent / "cap" / "samples"
KST = timezone(timedelta(hours=9))
CAP = "application/cap+xml"
FAST = {"push": 2, "sms": 3, "voice": 4, "mail": 2}

# Inside the heat-wave polygon (tests/cap/samples/ko_heatwave.xml) ...
JONGNO_INSIDE = (37.5800, 126.9800)
JUNG_INSIDE = (37.5620, 126.9900)
# ... and outside it, in the same districts.
JONGNO_OUTSIDE = (37.5990, 126.9620)
# The flood circle of flood_circle.xml: 35.21,129.08, 3.5 km.
FLOOD_CENTRE = (35.2100, 129.0800)


def now_kst() -> datetime:
    return datetime.now(KST).replace(microsecond=0)


def cap_doc(name: str, *, identifier: str | None = None, sent: datetime | None = None,
            expires_in_s: int = 7200, references: list[tuple[str, str, datetime]] | None = None,
            status: str | None = None) -> bytes:
    """A sample with times moved to now (and its identifier, references, status as asked)."""
    text = (SAMPLES / name).read_text("utf-8")
    sent = sent or now_kst()
    text = re.sub(r"<sent>[^<]*</sent>", f"<sent>{format_cap_time(sent)}</sent>", text)
    expires = format_cap_time(now_kst() + timedelta(seconds=expires_in_s))
    text = re.sub(r"<expires>[^<]*</expires>", f"<expires>{expires}</expires>", text)
    if identifier:
        text = re.sub(r"<identifier>[^<]*</identifier>", f"<identifier>{identifier}</identifier>", text)
    if references is not None:
        refs = " ".join(f"{s},{i},{format_cap_time(t)}" for s, i, t in references)
        text = re.sub(r"<references>[^<]*</references>", f"<references>{refs}</references>", text)
    if status:
        text = re.sub(r"<status>[^<]*</status>", f"<status>{status}</status>", text)
    return text.encode("utf-8")


def placed(rid: str, where: tuple[float, float] | None, *contacts, district: str = "11110",
           languages=("ko",), drills: bool | None = None, **extra) -> dict:
    doc = {"id": rid, "name": f"Resident {rid}", "languages": list(languages), "district": district,
           "contacts": list(contacts), **extra}
    if where:
        doc["location"] = {"lat": where[0], "lon": where[1]}
    if drills is not None:
        doc["consent"] = {"drills": drills}
    return doc


def feature_phone(number: str) -> dict:
    return {"type": "phone", "number": number, "handset": "feature_phone"}


def answers_sms(number: str, reply: str | None = "1") -> dict:
    """A behaviour: the SMS is delivered and, if `reply`, answered at once."""
    return {"phones": [number], "sms": {"outcome": "delivered", "reply": reply, "reply_after_s": 1}}


async def post_cap(city, body: bytes, policy: dict | None = None, **headers) -> tuple[int, dict]:
    h = {**city.auth, "Content-Type": CAP, **headers}
    if policy is not None:
        h["Gateway-Policy"] = orjson.dumps(policy).decode()
    async with city.http.post(f"{city.api}/v1/alerts", data=body, headers=h) as r:
        return r.status, await r.json(content_type=None)


async def call(city, method: str, path: str, json=None, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else city.auth
    async with city.http.request(method, f"{city.api}{path}", json=json, headers=headers) as r:
        body = await r.read()
        return r.status, (orjson.loads(body) if body else {})


def texts(city, rid: str, channel: str | None = None) -> list[str]:
    return [r["text"] for r in city.received(rid) if channel is None or r["channel"] == channel]
