"""What the Chromium tests share: Debian's chromium through Playwright, the two
viewports, signing in through the form, and the layout rules every page must keep."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from .web_helpers import WebGateway, require_playwright

playwright_api = require_playwright()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"]

# Under CI (CI=true) a missing chromium fails the test instead of skipping it.
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
                                    reason="Debian's chromium is not installed (scripts/debian-test.txt)")


async def sign_in(page, wg: WebGateway, user: str, path: str) -> None:
    """Through the sign-in form (password + a fresh TOTP code); fails with the page's words."""
    await page.goto(f"{wg.base_url}{path}")
    assert "/signin" in page.url
    await page.fill("#username", user)
    await page.fill("#password", wg.logins[user]["password"])
    await page.fill("#totp", wg.code(user))
    await page.click("button[type=submit]")
    try:
        await page.wait_for_url(f"{wg.base_url}{path}", timeout=10_000)
    except playwright_api.TimeoutError:
        message = await page.locator("body").inner_text()
        raise AssertionError(f"{user} was not signed in; the page says: {message[:300]}") from None


async def check_layout(page, label: str, targets: str = "main .button, main button, .topbar button") -> None:
    """Every visible target at least 44 px tall; nothing wider than the screen."""
    small = await page.eval_on_selector_all(
        targets, "els => els.filter(e => e.offsetParent && e.getBoundingClientRect().height < 44).map(e => e.textContent)")
    assert small == [], f"{label}: small targets {small}"
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{label}: page is {overflow}px wider than the screen"


async def wait_js(page, expression: str, timeout: float = 8.0) -> None:
    """Polls a JS expression (wait_for_function would need 'unsafe-eval', which the CSP refuses)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.1)
