"""A resident opens the link from their text message on a small phone and answers."""

from __future__ import annotations

import pytest

from gateway.samples import phone, resident
from tests.console.town import heat_wave

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True, "has_touch": True}


@pytest.fixture
async def link(town, site):
    await town.add(resident("halmoni", phone("+821055500001"), languages=["ko"], needs=["low_vision"]))
    town.sms.script["halmoni"] = "sent"
    aid = await town.post_alert(heat_wave({"residents": ["halmoni"]}))
    return aid, f"{site}/m/{aid}.{await town.token(aid, 'halmoni')}"


async def test_a_resident_acknowledges_and_the_delivery_is_confirmed(town, browser, link, screenshots):
    aid, url = link
    page = await (await browser.new_context(**PHONE)).new_page()
    await page.goto(url)
    assert await page.locator("h1").inner_text() == "폭염 경보"
    assert await page.locator(".severity").inner_text() == "위험"
    await page.screenshot(path=str(screenshots / "resident-message.png"))
    await page.get_by_role("button", name="받았습니다").click()
    await page.get_by_role("status").wait_for()
    assert "감사합니다" in await page.get_by_role("status").inner_text()
    d = await town.delivery(aid, "halmoni")
    assert (d["s"], d["y"]) == ("confirmed", "web:acknowledged")


async def test_the_message_switches_language_and_works_without_javascript(town, browser, link):
    aid, url = link
    page = await (await browser.new_context(java_script_enabled=False, **PHONE)).new_page()
    await page.goto(url)
    assert await page.get_by_role("button", name="소리로 듣기").count() == 0  # hidden without speech
    await page.get_by_role("link", name="English").click()
    assert await page.locator("html").get_attribute("lang") == "en"
    await page.get_by_role("button", name="I got this").click()
    await page.get_by_text("We know you got this message").wait_for()
    assert (await town.delivery(aid, "halmoni"))["s"] == "confirmed"


async def test_read_aloud_shows_only_where_the_browser_can_speak(browser, link):
    _, url = link
    speaking = await (await browser.new_context(**PHONE)).new_page()
    await speaking.goto(url)
    assert await speaking.get_by_role("button", name="소리로 듣기").is_visible()
    mute = await browser.new_context(**PHONE)
    await mute.add_init_script("Object.defineProperty(window, 'speechSynthesis', {value: undefined});")
    page = await mute.new_page()
    await page.goto(url)
    assert not await page.locator("#speak").is_visible()


async def test_a_resident_changes_their_settings(town, browser, link):
    _, url = link
    page = await (await browser.new_context(**PHONE)).new_page()
    await page.goto(url)
    await page.get_by_role("link", name="내 알림 설정").click()
    await page.get_by_label("둘째 언어").select_option("en")
    await page.get_by_label("먼저").select_option("voice")
    await page.get_by_label("혼자 삽니다").check()
    await page.get_by_label("시작").fill("22:00")
    await page.get_by_label("끝").fill("07:00")
    await page.get_by_role("button", name="설정 저장").click()
    await page.get_by_role("status").wait_for()
    saved = await town.registry.get("halmoni")
    assert saved["languages"] == ["ko", "en"] and saved["needs"] == ["low_vision", "lives_alone"]
    assert saved["quiet_hours"] == {"start": "22:00", "end": "07:00"}
