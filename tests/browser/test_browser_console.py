"""An operator in a real browser: signs in, watches a running alert, exports who is unreached."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from gateway.samples import phone, resident
from tests.browser.conftest import signed_in
from tests.console.town import heat_wave


async def running_alert(town) -> str:
    """Twenty residents texted; nobody has answered yet; one lives alone and has no phone."""
    await town.add(*[resident(f"r{i:02d}", phone(f"+8210555{i:05d}"), name=f"Resident {i:02d}")
                     for i in range(20)],
                   resident("alone", name="Choi Alone", needs=["lives_alone"]))
    town.sms.script.update({f"r{i:02d}": "sent" for i in range(20)})
    return await town.post_alert(heat_wave({"residents": [f"r{i:02d}" for i in range(20)] + ["alone"]}))


async def test_an_operator_watches_the_counts_move_and_exports_the_unreached(town, site, browser, screenshots):
    aid = await running_alert(town)
    await town.operator("mina", "operator")
    page = await signed_in(browser, site, "mina")
    await page.get_by_role("link", name="Heat wave").click()
    await page.wait_for_url(f"{site}/ops/alerts/{aid}")
    confirmed = page.locator(f'[data-alert="{aid}"][data-field="deliveries.confirmed"]').first
    assert await confirmed.inner_text() == "0"

    async def residents_answer():
        for i in range(12):
            await town.report(aid, f"r{i:02d}", "delivered")
            await asyncio.sleep(0.1)

    answering = asyncio.create_task(residents_answer())
    # The page is not reloaded: the numbers arrive over server-sent events.
    await page.wait_for_function(
        f"""() => document.querySelector('[data-alert="{aid}"][data-field="deliveries.confirmed"]')
                  .textContent === '12'""", timeout=15_000)
    await answering
    assert await page.locator(f'progress[data-alert="{aid}"]').get_attribute("value") is not None
    await page.screenshot(path=str(screenshots / "console-alert.png"))

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the list (CSV)").click()
    download = await download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text("utf-8-sig"))))
    names = {row["name"] for row in rows}
    assert "Choi Alone" in names and "Resident 19" in names and "Resident 00" not in names
    assert next(r for r in rows if r["name"] == "Choi Alone")["lives_alone"] == "yes"


async def test_the_console_works_without_javascript(town, site, browser):
    aid = await running_alert(town)
    await town.operator("jun", "operator")
    page = await signed_in(browser, site, "jun", java_script_enabled=False)
    await page.goto(f"{site}/ops/alerts/{aid}")
    await town.report(aid, "r00", "delivered")
    await page.get_by_role("link", name="Refresh now").click()
    assert await page.locator(f'[data-alert="{aid}"][data-field="deliveries.confirmed"]').first.inner_text() == "1"
    await page.get_by_role("button", name="Cancel this alert").click()
    await page.get_by_text("Alert cancelled").wait_for()
    await town.dispatch.settle()
    assert (await town.delivery(aid, "r05"))["s"] == "cancelled"


async def test_reach_page_screenshot(town, site, browser, screenshots):
    await town.add(resident("a", phone("+821055500001")), resident("b", phone("+8227250001", "landline")),
                   resident("c"), resident("d", phone("+821055500002"), needs=["deaf"], district="11140"),
                   resident("e", phone("+821055500003", "smartphone"), district="11140"))
    await town.operator("mina", "viewer")
    page = await signed_in(browser, site, "mina")
    await page.goto(f"{site}/ops/reach")
    await page.locator("svg.chart").wait_for()
    await page.screenshot(path=str(screenshots / "console-reach.png"))
