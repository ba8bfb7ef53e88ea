"""axe-core finds no WCAG 2.2 A/AA violation on the console and resident pages,
and a keyboard alone reaches every control."""

from __future__ import annotations

import pytest

from gateway.samples import phone, resident
from tests.browser.conftest import axe_violations, signed_in
from tests.console.town import PASSWORD, heat_wave

CONSOLE_PAGES = ["/ops/alerts", "/ops/alerts/{aid}", "/ops/alerts/{aid}?welfare=1", "/ops/providers", "/ops/reach",
                 "/ops/audit", "/ops/operators", "/ops/alerts/al_missing"]
FOCUSABLE = ("a[href], button:not([hidden]), input:not([type=hidden]), select, textarea, summary, "
             "[tabindex]:not([tabindex='-1'])")


@pytest.fixture
async def busy(town):
    """An alert half-way: confirmed, waiting, unreachable, one who lives alone."""
    await town.add(resident("ok", phone("+821055500001"), name="Kim Ok"),
                   resident("wait", phone("+821055500002"), name="Jung Waiting", languages=["en"]),
                   resident("alone", phone("+821055500003"), name="Choi Alone", needs=["lives_alone"]),
                   resident("none", name="Park Nocontact", district="11140"))
    town.sms.script.update({"ok": "delivered", "wait": "sent", "alone": "failed"})
    town.voice.script.update({"alone": "failed"})
    aid = await town.post_alert(heat_wave({"residents": ["ok", "wait", "alone", "none"]}))
    await town.operator("root", "admin")
    return aid


@pytest.fixture
async def drill(town, busy):
    """A drill, marked on every page, to a resident who reads Thai: told so before the message."""
    await town.add(resident("thai", phone("+821055500009"), name="Somchai", languages=["th"]))
    return await town.post_alert(heat_wave({"residents": ["wait", "thai"]}, status="Exercise"))


async def test_console_pages_have_no_wcag_violations(town, site, browser, busy, drill):
    page = await signed_in(browser, site, "root", bypass_csp=True)  # axe is injected as a script
    for path in CONSOLE_PAGES + [f"/ops/alerts/{drill}"]:
        await page.goto(site + path.format(aid=busy))
        assert await axe_violations(page) == [], path
    await page.goto(f"{site}/ops/alerts")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{site}/ops/login")
    assert await axe_violations(page) == [], "login"


async def test_resident_pages_have_no_wcag_violations(town, site, browser, busy, drill):
    ctx = await browser.new_context(bypass_csp=True, viewport={"width": 390, "height": 844})
    page = await ctx.new_page()
    for aid, rid in ((busy, "wait"), (busy, "alone"), (drill, "thai")):
        base = f"{site}/m/{aid}.{await town.token(aid, rid)}"
        for path in ("", "?lang=ko", "?lang=en"):
            await page.goto(base + path)
            assert await axe_violations(page) == [], base + path
        await page.goto(base.replace("/m/", "/r/"))
        assert await axe_violations(page) == [], "settings"
    await page.goto(f"{site}/m/{busy}.nosuchtoken")
    assert await axe_violations(page) == [], "missing"


async def tab_through(page, limit: int = 400) -> list[str]:
    """Press Tab until focus comes round again; the focused elements, in order, each with a visible outline."""
    seen: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("""() => {
            const el = document.activeElement;
            if (!el || el === document.body) return null;
            const style = getComputedStyle(el);
            return {id: el.dataset.kbd, outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px'};
        }""")
        if focused is None:
            if seen:
                break
            continue
        assert focused["outline"], f"no visible focus on {focused['id']}"
        if seen and focused["id"] == seen[-1]:
            continue  # Tab steps through the fields of one time input
        if focused["id"] in seen:
            break
        seen.append(focused["id"])
    return seen


async def label_controls(page) -> list[str]:
    return await page.evaluate(f"""() => Array.from(document.querySelectorAll("{FOCUSABLE}"))
        .filter(el => el.getClientRects().length > 0 || el.classList.contains('skip'))
        .map((el, i) => (el.dataset.kbd = i + ':' + el.tagName + ':'
                                          + (el.textContent || el.name || '').trim().slice(0, 30)))""")


async def test_a_keyboard_reaches_every_console_control(town, site, browser, busy):
    page = await signed_in(browser, site, "root")
    for path in ("/ops/alerts", f"/ops/alerts/{busy}", "/ops/operators", "/ops/reach"):
        await page.goto(site + path)
        controls = await label_controls(page)
        assert set(await tab_through(page)) == set(controls), path


async def test_a_keyboard_alone_reads_and_acknowledges_a_message(town, site, browser, busy):
    page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
    url = f"{site}/m/{busy}.{await town.token(busy, 'wait')}"
    for target in (url, url.replace("/m/", "/r/")):
        await page.goto(target)
        controls = await label_controls(page)
        assert set(await tab_through(page)) == set(controls), target
    await page.goto(url)
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent.includes('I got this')"):
            break
    await page.keyboard.press("Enter")
    await page.get_by_role("status").wait_for()
    assert (await town.delivery(busy, "wait"))["y"] == "web:acknowledged"


async def test_sign_in_by_keyboard(town, site, browser, busy):
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{site}/ops/login")
    await page.keyboard.press("Tab")  # skip link
    await page.keyboard.press("Tab")
    await page.keyboard.type("root")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{site}/ops/alerts")
