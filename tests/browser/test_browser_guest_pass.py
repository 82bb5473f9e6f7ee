"""A mutual-aid responder in headless Chromium: the dispatcher presses the big button and
reads the PIN off the screen, the responder opens the link on a phone, fills the plain
form (no inline script: CSP script-src 'self'), lands on the viewer as "mutual aid:
<agency>" and sees video, which the all-clear cuts."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from tests.browser_helpers import (
    ARGS,
    CHROMIUM,
    FRAMES_DECODED,
    LAPTOP,
    PHONE,
    SHOTS,
    check_layout,
    needs_chromium,
    playwright_api,
    sign_in,
)
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

pytestmark = needs_chromium


async def test_dispatcher_gives_a_pass_and_the_responder_watches_until_all_clear(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        async with wg.bearer("admin") as admin:
            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    dispatch_ctx = await browser.new_context(viewport=LAPTOP)
                    guest_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
                    dispatch = await dispatch_ctx.new_page()
                    guest = await guest_ctx.new_page()
                    errors: list[str] = []
                    for pg in (dispatch, guest):
                        pg.on("pageerror", lambda exc: errors.append(str(exc)))

                    await sign_in(dispatch, wg, "dispatcher", "/dispatch")
                    await dispatch.wait_for_selector("#guest-pass-give:visible", timeout=8000)
                    await dispatch.click("#guest-pass-give")
                    await dispatch.wait_for_selector("#guest-pass-result:visible")
                    pin = (await dispatch.inner_text("#guest-pass-pin")).replace(" ", "")
                    link = await dispatch.get_attribute("#guest-pass-link", "href")
                    assert len(pin) == 6 and link and "/guest/" in link
                    size = await dispatch.evaluate(
                        "parseFloat(getComputedStyle(document.getElementById('guest-pass-pin')).fontSize)"
                    )
                    assert size >= 36, f"the PIN is shown at {size}px"
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    await dispatch.screenshot(path=str(SHOTS / "dispatch-guest-pass-laptop.png"), full_page=True)

                    # the link is made from [gateway] public_url; this test's server listens elsewhere
                    assert link.startswith(wg.gateway.config.public_url.rstrip("/"))
                    await guest.goto(wg.base_url + urlsplit(link).path)
                    await check_layout(guest, "guest form phone", "main button")
                    await guest.screenshot(path=str(SHOTS / "guest-form-phone.png"), full_page=True)
                    await guest.fill("#guest-name", "Dana Ortiz")
                    await guest.fill("#guest-badge", "4471")
                    await guest.fill("#guest-agency", "County Sheriff")
                    await guest.fill("#guest-pin", pin)
                    await guest.click("button[type=submit]")
                    await guest.wait_for_url(f"{wg.base_url}/view", timeout=10_000)
                    assert "mutual aid: County Sheriff" in await guest.inner_text(".topbar")

                    decoded, started = 0, time.monotonic()
                    while time.monotonic() - started < 10:
                        decoded = await guest.evaluate(FRAMES_DECODED)
                        if decoded > 0:
                            break
                        await asyncio.sleep(0.1)
                    assert decoded > 0, "the guest saw no video"
                    tiles = await guest.evaluate("window.sightlineViewer.tiles().map(t => t.camera && t.camera.id)")
                    assert tiles and all(str(t).startswith("hs-") for t in tiles), tiles

                    await dispatch.wait_for_selector("#guest-pass-list li:has-text('Dana Ortiz')", timeout=8000)

                    await admin.post(f"/api/v1/emergencies/{e['id']}/all-clear")
                    # the guest's session died with the emergency: the page leaves the video for sign-in
                    await guest.wait_for_url("**/signin?guest_ended=1", timeout=5000)
                    assert "access has ended with the emergency" in await guest.inner_text("main")
                    assert len(wg.gateway.sessions) == 0
                    assert errors == [], errors
                finally:
                    await browser.close()
    finally:
        await stop(server, task)
