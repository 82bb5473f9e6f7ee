"""The auditor console in headless Chromium: sign in through the form, read an incident,
and keep phone and laptop screenshots in docs/screenshots/."""

from __future__ import annotations

import asyncio

from emergency.audit import AuditEvent, describe
from gateway.reports.audit_packet import site_names
from tests.browser_helpers import CHROMIUM, SHOTS, check_layout, needs_chromium, playwright_api
from tests.web_helpers import lockdown_and_offer, start_web_gateway, stop

SIZES = {"phone": (390, 844), "laptop": (1366, 768)}

pytestmark = needs_chromium


async def test_auditor_console_in_a_browser(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        officer = await wg.sign_in("officer")
        async with officer, wg.bearer("admin") as admin:
            eid, viewer = await lockdown_and_offer(admin, wg.base_url)
            r = await officer.post(
                "/whep/hs-front", content=viewer.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            )
            assert r.status_code == 201, r.text
            await asyncio.sleep(1.0)
            await admin.post(f"/api/v1/emergencies/{eid}/all-clear")
            await viewer.close()

        SHOTS.mkdir(parents=True, exist_ok=True)
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            try:
                for label, (width, height) in SIZES.items():
                    context = await browser.new_context(
                        viewport={"width": width, "height": height},
                        color_scheme="dark" if label == "phone" else "light",
                    )
                    page = await context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await page.goto(f"{wg.base_url}/audit")
                    assert "/signin" in page.url
                    await page.fill("#username", "auditor")
                    await page.fill("#password", wg.logins["auditor"]["password"])
                    await page.fill("#totp", wg.code("auditor"))
                    if label == "phone":
                        await page.screenshot(path=str(SHOTS / f"signin-{label}.png"), full_page=True)
                    await page.click("button[type=submit]")
                    await page.wait_for_url(f"{wg.base_url}/audit")
                    await page.wait_for_selector("#incidents tbody tr")
                    await page.wait_for_selector("#verify-banner.ok")
                    assert "Audit log verified" in await page.inner_text("#verify-banner")
                    await check_layout(page, f"audit list {label}")
                    await page.screenshot(path=str(SHOTS / f"audit-list-{label}.png"), full_page=True)

                    await page.click(f"a[href='/audit/emergencies/{eid}']")
                    await page.wait_for_selector("#by-officer tbody tr")
                    await page.wait_for_selector("#timeline li[data-event='emergency.all_clear']")
                    officer_rows = await page.inner_text("#by-officer tbody")
                    assert "Officer Dana Reyes" in officer_rows and "HS front entrance" in officer_rows
                    assert "HS front entrance" in await page.inner_text("#by-camera tbody")
                    timeline = await page.inner_text("#timeline")
                    assert "started watching HS front entrance" in timeline and "ALL CLEAR" in timeline
                    # the words are the catalogue's (emergency/audit/events.py), filled by the server
                    cleared = next(
                        e
                        for e in wg.gateway.audit.entries(limit=10_000)
                        if e.event_type == AuditEvent.EMERGENCY_ALL_CLEAR
                    )
                    shown = await page.inner_text("#timeline li[data-event='emergency.all_clear'] .what")
                    assert shown == describe(cleared, site_names(wg.gateway.config.site))
                    assert "handgun" in await page.inner_text("#threat-basis")
                    # Large targets, nothing wider than the screen (tables stack), readable text.
                    await check_layout(page, f"audit incident {label}")
                    await page.screenshot(path=str(SHOTS / f"audit-incident-{label}.png"), full_page=True)

                    # Filter by officer: the tables keep that officer's rows.
                    await page.select_option("#f-officer", "officer")
                    await page.click("#filters button[type=submit]")
                    await page.wait_for_selector("#by-officer tbody tr")

                    await page.goto(
                        f"{wg.base_url}/audit/report?month={wg.gateway.emergencies.get(eid).declared_at:%Y-%m}"
                    )
                    await page.wait_for_selector("#accesses tbody tr")
                    assert "hs-front" in await page.inner_text("#accesses tbody")
                    await page.screenshot(path=str(SHOTS / f"audit-report-{label}.png"), full_page=True)

                    await page.click("#sign-out")
                    await page.wait_for_url("**/signin?signed_out=1")
                    assert errors == [], errors
                    await context.close()
            finally:
                await browser.close()
    finally:
        await stop(server, task)
