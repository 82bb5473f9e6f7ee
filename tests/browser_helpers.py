"""What the Chromium tests share: Debian's chromium through Playwright, the two
viewports, signing in through the form, and the layout rules every page must keep."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from tests.system_deps import IN_CI

from .web_helpers import WebGateway, require_playwright

playwright_api = require_playwright()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

# Under CI a missing chromium fails the test instead of skipping it (the rule of tests/system_deps.py).
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not IN_CI,
    reason="Debian's chromium is not installed (scripts/debian-test.txt)",
)


# The most video frames any tile of the viewer page has decoded (0 when none plays).
FRAMES_DECODED = """async () => {
  const tiles = window.sightlineViewer ? window.sightlineViewer.tiles() : [];
  let best = 0;
  for (const t of tiles) {
    if (!t.view || !t.view.pc) continue;
    const report = await t.view.pc.getStats();
    report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") best = Math.max(best, s.framesDecoded || 0); });
  }
  return best;
}"""


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
        targets,
        "els => els.filter(e => e.offsetParent && e.getBoundingClientRect().height < 44).map(e => e.textContent)",
    )
    assert small == [], f"{label}: small targets {small}"
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{label}: page is {overflow}px wider than the screen"
    await check_contrast(page, label)


async def wait_js(page, expression: str, timeout: float = 8.0) -> None:
    """Polls a JS expression (wait_for_function would need 'unsafe-eval', which the CSP refuses)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.1)


LOW_CONTRAST = """(minimum) => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (top, under) => top.slice(0, 3).map((v, i) => v * top[3] + under[i] * (1 - top[3])).concat(1);
  const background = (el) => {
    const layers = [];
    for (let x = el; x; x = x.parentElement) {
      const s = getComputedStyle(x);
      if (s.backgroundImage !== "none" || x.tagName === "VIDEO" || x.tagName === "IMG") return null;  // text on a picture
      const c = parse(s.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let base = [255, 255, 255, 1];
    for (const c of layers.reverse()) base = over(c, base);
    return base;
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!el.offsetParent && getComputedStyle(el).position !== "fixed") continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("svg")) continue;
    const s = getComputedStyle(el);
    if (s.visibility === "hidden" || Number(s.opacity) === 0) continue;
    const bg = background(el), fg = parse(s.color);
    if (!bg || !fg) continue;
    const text = over(fg, bg), a = lum(text), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < minimum) bad.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
  }
  return bad;
}"""


async def check_contrast(page, label: str, minimum: float = 4.5) -> None:
    """Readable in sunlight: all visible text at least WCAG AA contrast against what is behind it
    (text drawn over video or pictures is left to the element's own backdrop)."""
    bad = await page.evaluate(LOW_CONTRAST, minimum)
    assert bad == [], f"{label}: text below {minimum}:1 contrast: {bad[:10]}"
