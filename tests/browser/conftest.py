"""Browser tests: Debian's headless Chromium driven by Playwright, against the
real app on a loopback port (tests/console/town.py).

They skip, saying why, where Chromium or Playwright is missing:
    apt-get install -y chromium
    pip install playwright          (never `playwright install`: Chromium comes from Debian)
    npm ci --prefix tests/browser   (axe-core, for the accessibility checks)
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from aiohttp import web

from tests.console.town import PASSWORD, town  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the pages are photographed: a scratch folder, so a test run rewrites
    no tracked file; `GATEWAY_SCREENSHOTS=docs/screenshots` refreshes the README's."""
    wanted = os.environ.get("GATEWAY_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright missing (pip install playwright)"
    return None


MISSING = _missing()


@pytest.fixture(autouse=True)
def needs_a_browser():
    if MISSING:
        pytest.skip(MISSING)


@pytest.fixture
async def site(town):
    """The app on a loopback port; yields its base URL."""
    runner = web.AppRunner(town.app(), shutdown_timeout=1)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def signed_in(browser, site: str, name: str, **context):
    """A page whose operator signed in through the login form."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    page = await ctx.new_page()
    await page.goto(f"{site}/ops/alerts")
    assert "/ops/login" in page.url
    await page.get_by_label("Operator name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{site}/ops/alerts")
    return page


async def axe_violations(page) -> list[dict]:
    """WCAG 2.0-2.2 A and AA rules that fail on the page, per axe-core."""
    if not AXE.exists():
        pytest.skip("axe-core missing (npm ci --prefix tests/browser)")
    await page.add_script_tag(content=AXE.read_text())
    result = await page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})).violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return result
