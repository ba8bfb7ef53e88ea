"""What a resident sees when they open the link in their message, and what their button does."""

from __future__ import annotations

import re

import pytest

from gateway import deliveries, keys
from gateway.samples import phone, resident
from tests.console.town import NONCE, heat_wave

MAX_BYTES = 30 * 1024


@pytest.fixture
async def alerted(town):
    """Two neighbours got the heat-wave alert by SMS and have not answered yet."""
    await town.add(resident("halmoni", phone("+821055500001"), languages=["ko"]),
                   resident("tuan", phone("+821055500002"), languages=["vi", "en"]))
    town.sms.script.update({"halmoni": "sent", "tuan": "sent"})
    aid = await town.post_alert(heat_wave({"residents": ["halmoni", "tuan"]},
                                          response_options=[{"code": "2", "label": {"ko": "도움이 필요해요",
                                                                                    "en": "I need help"}}]))
    return aid


async def page(client, town, aid, rid, query=""):
    token = await town.token(aid, rid)
    r = await client.get(f"/m/{aid}.{token}{query}")
    return r, await r.text(), token


async def test_a_korean_resident_reads_the_alert_in_korean_with_severity_in_words_and_a_shape(client, town, alerted):
    r, html, _ = await page(client, town, alerted, "halmoni")
    assert r.status == 200
    assert '<html lang="ko">' in html and "폭염 경보" in html and "물을 자주 드시고" in html
    assert "위험" in html and '<svg class="icon"' in html  # "Severe" said in words, beside a triangle
    assert "받았습니다" in html and "소리로 듣기" in html
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"


async def test_a_resident_whose_language_the_alert_lacks_gets_their_next_language(client, town, alerted):
    _, html, _ = await page(client, town, alerted, "tuan")
    assert '<html lang="en">' in html and "Heat wave warning" in html and "I got this" in html


async def test_the_language_switcher_offers_every_language_the_alert_carries(client, town, alerted):
    _, html, token = await page(client, town, alerted, "halmoni", "?lang=en")
    assert "Heat wave warning" in html
    assert '<a href="?lang=ko" lang="ko" hreflang="ko">한국어</a>' in html
    assert '<a href="?lang=en" lang="en" hreflang="en" aria-current="true">English</a>' in html
    _, html, _ = await page(client, town, alerted, "halmoni", "?lang=fr")
    assert '<html lang="ko">' in html  # not carried: their own language


async def test_the_page_with_its_style_and_script_stays_under_30_kb(client, town, alerted):
    _, html, _ = await page(client, town, alerted, "halmoni")
    total = len(html.encode())
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        total += len(await (await client.get(asset)).read())
    assert total < MAX_BYTES


async def test_i_got_this_confirms_the_delivery_as_acknowledged_on_the_web(client, town, alerted):
    r, html, token = await page(client, town, alerted, "halmoni")
    r = await client.post(f"/m/{alerted}.{token}", data={"nonce": NONCE.search(html).group(1), "lang": "ko",
                                                         "answer": "1"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/m/{alerted}.{token}?lang=ko"
    d = await town.delivery(alerted, "halmoni")
    assert d["s"] == "confirmed" and d["y"] == "web:acknowledged"
    history = await deliveries.history(town.redis, alerted, "halmoni")
    assert history[-1].split("|")[4:6] == ["acknowledged", "web"]
    _, html, _ = await page(client, town, alerted, "halmoni")
    assert "감사합니다" in html and 'name="nonce"' not in html


async def test_a_response_option_is_recorded_with_its_code(client, town, alerted):
    _, html, token = await page(client, town, alerted, "tuan")
    assert "I need help" in html
    await client.post(f"/m/{alerted}.{token}", data={"nonce": NONCE.search(html).group(1), "lang": "en",
                                                     "answer": "2"})
    history = await deliveries.history(town.redis, alerted, "tuan")
    assert history[-1].split("|")[4:] == ["acknowledged", "web", "page", "2"]


async def test_a_forged_nonce_records_nothing(client, town, alerted):
    _, html, token = await page(client, town, alerted, "halmoni")
    good = NONCE.search(html).group(1)
    other_token = await town.token(alerted, "tuan")
    issued, mac = good.split(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for nonce in ("1.forged", f"{issued}.0000", "", f"{issued}.{flipped}", f"{int(issued) - 3 * 86400}.{mac}"):
        r = await client.post(f"/m/{alerted}.{token}", data={"nonce": nonce, "answer": "1"}, allow_redirects=False)
        assert r.status == 403
    # A nonce from another resident's page does not fit this page either.
    _, other_html, _ = await page(client, town, alerted, "tuan")
    r = await client.post(f"/m/{alerted}.{token}", data={"nonce": NONCE.search(other_html).group(1)},
                          allow_redirects=False)
    assert r.status == 403 and other_token != token
    assert (await town.delivery(alerted, "halmoni"))["s"] == "in_progress"


async def test_a_token_opens_only_its_own_residents_message(client, town, alerted):
    await town.add(resident("elsewhere", phone("+821055500009")))
    town.sms.script["elsewhere"] = "sent"
    other = await town.post_alert(heat_wave({"residents": ["elsewhere"]}))
    token = await town.token(alerted, "halmoni")
    assert (await client.get(f"/m/{other}.{token}")).status == 404  # right token, wrong alert
    assert (await client.get(f"/m/{alerted}.{token[:-1]}x")).status == 404
    assert (await client.get(f"/m/{alerted}.nothing")).status == 404
    r = await client.post(f"/m/{other}.{token}", data={"nonce": "x", "answer": "1"}, allow_redirects=False)
    assert r.status == 404
    assert (await town.delivery(other, "elsewhere"))["s"] == "in_progress"


async def test_a_cancelled_alert_still_reads_but_asks_nothing(client, town, alerted):
    await town.redis.hset(keys.alert(alerted), "status", "cancelled")
    _, html, _ = await page(client, town, alerted, "halmoni")
    assert "이 알림은 종료되었습니다" in html and 'name="nonce"' not in html


async def test_only_the_pages_own_css_and_js_are_served_and_cached(client):
    r = await client.get("/static/resident.css")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")
    again = await client.get("/static/resident.css", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304
    for name in ("nothing.js", "..%2Fkeys.py", "README.md"):
        assert (await client.get(f"/static/{name}")).status == 404
