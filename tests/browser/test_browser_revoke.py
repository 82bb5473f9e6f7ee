"""An administrator takes back an officer's access from the admin page, in headless
Chromium: the officer, watching in another browser, is listed as signed in and watching;
one button (and a reason) ends every sign-in of theirs, the gateway closes their video
within a second, and their page leaves for the sign-in page."""

from __future__ import annotations

import asyncio
import time

from emergency.audit import AuditEvent
from tests.browser_helpers import (
    ARGS,
    CHROMIUM,
    FRAMES_DECODED,
    LAPTOP,
    needs_chromium,
    playwright_api,
    sign_in,
    wait_js,
)
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

pytestmark = needs_chromium


async def test_take_back_access_button_cuts_the_officers_video(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        async with wg.bearer("admin") as api:
            e = (await api.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await api.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                admin = await (await browser.new_context(viewport=LAPTOP)).new_page()
                officer = await (await browser.new_context(viewport=LAPTOP)).new_page()
                await sign_in(officer, wg, "officer", "/view")
                await wait_js(officer, "window.sightlineViewer && window.sightlineViewer.tiles().length > 0", 15)
                deadline = time.monotonic() + 20
                while await officer.evaluate(FRAMES_DECODED) < 3:
                    assert time.monotonic() < deadline, "the officer's video did not start"
                    await asyncio.sleep(0.2)
                await sign_in(admin, wg, "admin", "/admin")
                name = wg.gateway.tokens.directory.name("officer")
                row = admin.locator("#signed-in tbody tr", has_text=name)
                await row.locator("td[data-label=Watching]", has_text="yes").wait_for(timeout=10_000)

                admin.on("dialog", lambda d: asyncio.ensure_future(d.accept("phone reported stolen")))
                await row.get_by_role("button", name="Take back access").click()
                clicked = time.monotonic()
                while any(s.actor.id == "officer" for s in wg.gateway.sessions.all()):
                    assert time.monotonic() - clicked < 1.5, "the officer's video outlived the revocation"
                    await asyncio.sleep(0.02)
                print(f"\nbutton click -> officer's video closed: {time.monotonic() - clicked:.3f} s")
                await officer.wait_for_url("**/signin**", timeout=15_000)
                await row.wait_for(state="detached", timeout=10_000)  # no longer listed as signed in
            finally:
                await browser.close()
        revoked = [e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == AuditEvent.ACCESS_REVOKED]
        assert revoked and revoked[-1].actor_id == "admin" and "phone reported stolen" in revoked[-1].reason
    finally:
        await stop(server, task)
