"""The officer's page on a phone and when the action changes, in Debian's headless Chromium.

At 390x844 and 320x568 the first screen shows live video without scrolling, and a
focused camera fills the width with its LIVE badge beside, never over, the picture. When
the administrator changes LOCKDOWN to SECURE the heading says SECURE within 2 s and a
banner names the cameras that left the officer's view and why.
"""

from __future__ import annotations

import asyncio
import time

from tests.browser_helpers import ARGS, CHROMIUM, PHONE, check_layout, needs_chromium, playwright_api, sign_in, wait_js
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

pytestmark = needs_chromium

SMALL_PHONE = {"width": 320, "height": 568}

# Boxes of a tile's video and badge, the viewport, and the frames that tile decoded.
TILE_BOXES = """async (which) => {
  const v = window.sightlineViewer;
  const tile = which === "focus" ? v.focus() : v.tiles()[0];
  const box = (e) => { const r = e.getBoundingClientRect(); return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height }; };
  let frames = 0;
  if (tile && tile.view && tile.view.pc) {
    const report = await tile.view.pc.getStats();
    report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames = Math.max(frames, s.framesDecoded || 0); });
  }
  return { video: box(tile.video), badge: box(tile.badge), frames, live: tile.root.dataset.live,
           viewport: { width: window.innerWidth, height: window.innerHeight }, scrollY: window.scrollY,
           playing: tile.video.videoWidth > 0 };
}"""


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


async def test_phone_first_screen_and_focus(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    figures: dict[str, object] = {}
    try:
        async with wg.bearer("admin") as admin:
            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                for size in (PHONE, SMALL_PHONE):
                    label = f"{size['width']}x{size['height']}"
                    ctx = await browser.new_context(viewport=size, is_mobile=True, has_touch=True)
                    page = await ctx.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await sign_in(page, wg, "officer", "/view")
                    await wait_js(page, "document.querySelector('.grid .tile:first-child[data-live=live]')", 10)

                    # The first screen, unscrolled: the first tile's live video starts inside it.
                    first = await page.evaluate(TILE_BOXES, "grid")
                    assert first["scrollY"] == 0
                    assert first["frames"] > 0 and first["live"] == "live", first
                    assert first["video"]["top"] < size["height"], (
                        f"{label}: first video starts below the screen {first}"
                    )
                    assert first["video"]["bottom"] <= size["height"], f"{label}: first video cut off {first}"
                    assert not overlap(first["badge"], first["video"]), f"{label}: badge over the grid video {first}"
                    figures[f"{label} first video top/bottom px"] = (first["video"]["top"], first["video"]["bottom"])
                    await check_layout(page, f"viewer {label}")

                    # Focus: the picture fills the width, the badge stays out of it.
                    await page.click(".grid .tile .tile-open")
                    await page.wait_for_selector("#focus .tile[data-live=live]", timeout=8000)
                    await wait_js(page, "window.sightlineViewer.focus().video.videoWidth > 0", 8)
                    focus = await page.evaluate(TILE_BOXES, "focus")
                    vw = size["width"]
                    assert focus["video"]["width"] >= vw - 1 and focus["video"]["left"] <= 0.5, f"{label}: {focus}"
                    assert focus["video"]["top"] < size["height"] and focus["frames"] > 0, f"{label}: {focus}"
                    assert focus["video"]["bottom"] <= size["height"] + 0.5, (
                        f"{label}: focus taller than the screen {focus}"
                    )
                    assert not overlap(focus["badge"], focus["video"]), f"{label}: badge over the focused video {focus}"
                    # fills the screen: the video box takes most of the height under the heading
                    assert focus["video"]["height"] >= 0.5 * size["height"], f"{label}: {focus}"
                    figures[f"{label} focused video box"] = (focus["video"]["width"], focus["video"]["height"])
                    await check_layout(page, f"viewer focus {label}")
                    await page.click("#focus-close")
                    await page.wait_for_selector("#focus", state="hidden")
                    assert errors == [], errors
                    signed_in = await ctx.storage_state()  # a third sign-in within 30 s has no fresh TOTP code
                    await ctx.close()
                # Held sideways, focusing a camera goes full screen (Fullscreen API, on the tap).
                ctx = await browser.new_context(
                    viewport={"width": 844, "height": 390}, is_mobile=True, has_touch=True, storage_state=signed_in
                )
                page = await ctx.new_page()
                await page.goto(f"{wg.base_url}/view")
                await wait_js(page, "document.querySelector('.grid .tile:first-child[data-live=live]')", 10)
                await page.click(".grid .tile .tile-open")
                await wait_js(page, "document.fullscreenElement && document.fullscreenElement.id === 'focus'", 3)
                await page.wait_for_selector("#focus .tile[data-live=live]", timeout=8000)
                focus = await page.evaluate(TILE_BOXES, "focus")
                assert not overlap(focus["badge"], focus["video"]), focus
                assert focus["video"]["height"] >= 0.6 * focus["viewport"]["height"], focus
                figures["landscape focused video box"] = (focus["video"]["width"], focus["video"]["height"])
                await page.click("#focus-close")
                await wait_js(page, "!document.fullscreenElement", 3)
                await ctx.close()
            finally:
                await browser.close()
    finally:
        await stop(server, task)
    print(figures)


async def test_heading_follows_lockdown_to_secure(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        async with wg.bearer("admin") as admin:
            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    ctx = await browser.new_context(viewport=PHONE)
                    page = await ctx.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await sign_in(page, wg, "officer", "/view")
                    await wait_js(page, "document.querySelectorAll('.grid .tile[data-live=live]').length >= 5", 10)
                    assert "LOCKDOWN" in await page.inner_text(".emergency-card h1")
                    before = await page.eval_on_selector_all(".grid .tile", "ts => ts.map(t => t.dataset.camera)")
                    names = dict(
                        await page.eval_on_selector_all(
                            ".grid .tile",
                            "ts => ts.map(t => [t.dataset.camera, t.querySelector('.tile-name').textContent])",
                        )
                    )

                    r = await admin.patch(f"/api/v1/emergencies/{e['id']}", json={"action": "SECURE"})
                    assert r.status_code == 200, r.text
                    changed = time.monotonic()
                    while "SECURE" not in await page.inner_text(".emergency-card h1"):
                        assert time.monotonic() - changed < 2.0, "the heading did not say SECURE within 2 s"
                        await asyncio.sleep(0.05)
                    heading_s = time.monotonic() - changed
                    await page.wait_for_selector("#cameras-left:not([hidden])", timeout=2000)
                    banner = await page.inner_text("#cameras-left")
                    after = await page.eval_on_selector_all(".grid .tile", "ts => ts.map(t => t.dataset.camera)")
                    ended = [c for c in before if c not in after]
                    assert ended, "SECURE left every LOCKDOWN camera in view"
                    for camera in ended:
                        assert names[camera] in banner, (names[camera], banner)
                    for camera in after:
                        assert names[camera] not in banner, (names[camera], banner)
                    assert "LOCKDOWN to SECURE" in banner, banner
                    assert "LOCKDOWN" not in await page.inner_text(".emergency-card h1")
                    await check_layout(page, "viewer after SECURE")
                    # the banner goes when the officer has read it
                    await page.click("#cameras-left-ok")
                    await page.wait_for_selector("#cameras-left", state="hidden")
                    assert errors == [], errors
                    print({"heading_secure_s": round(heading_s, 2), "ended": ended})
                finally:
                    await browser.close()
    finally:
        await stop(server, task)
