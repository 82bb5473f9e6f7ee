"""Headless Chromium over HTTPS (``[gateway] tls_cert`` set, a test CA's certificate):
the officer signs in through the form and watches video; an officer of an agency without
a camera agreement is told so, and whom to call, instead of "no emergency"."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

from tests.browser_helpers import (
    ARGS,
    CHROMIUM,
    FRAMES_DECODED,
    PHONE,
    SHOTS,
    check_layout,
    needs_chromium,
    playwright_api,
    sign_in,
)
from tests.tls_certs import make_certs, tls_site_text
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

pytestmark = needs_chromium


async def test_officer_watches_video_over_https_and_an_outsider_is_told_whom_to_call(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    wg, server, task = await start_web_gateway(tmp_path / "site", edit=lambda text: tls_site_text(text, certs))
    wg.verify = ssl.create_default_context(cafile=str(certs.ca))
    assert wg.base_url.startswith("https://127.0.0.1:")
    try:
        async with playwright_api.async_playwright() as p:
            # Chromium trusts exactly this server key, as a browser told to trust the district's CA would
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=[*ARGS, f"--ignore-certificate-errors-spki-list={certs.spki_sha256}"]
            )
            try:
                officer_ctx = await browser.new_context(viewport=PHONE)
                outsider_ctx = await browser.new_context(viewport=PHONE)
                officer, outsider = await officer_ctx.new_page(), await outsider_ctx.new_page()
                errors: list[str] = []
                for page in (officer, outsider):
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)

                await sign_in(officer, wg, "officer", "/view")
                await sign_in(outsider, wg, "outsider", "/view")
                assert await officer.evaluate("location.protocol") == "https:"
                assert await officer.evaluate("window.isSecureContext") is True
                cookies = await officer_ctx.cookies()
                session = next(c for c in cookies if c["name"] == "sightline_session")
                assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
                await officer.wait_for_selector("#view-status:has-text('No emergency gives you access')")

                async with wg.bearer("admin") as admin:
                    e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
                    r = await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")
                    assert r.status_code == 200, r.text
                confirmed = time.monotonic()

                decoded = 0
                while time.monotonic() - confirmed < 8.0 and decoded == 0:
                    decoded = await officer.evaluate(FRAMES_DECODED)
                    await asyncio.sleep(0.1)
                assert decoded > 0, "no video frame decoded over HTTPS within 8 s of the confirmation"

                # the notice is there before the emergency too; wait for the refresh that names it
                help_box = "#access-help:has-text('during the emergency at')"
                await outsider.wait_for_selector(help_box, timeout=8_000)
                words = await outsider.inner_text("#access-help")
                assert "County Sheriff's Office" in words and "Lincoln High School" in words
                assert "call the district safety office, 555-0100" in words
                assert "No emergency" not in await outsider.inner_text("#view-status")
                assert await outsider.evaluate("document.querySelectorAll('video').length") == 0
                await check_layout(outsider, "viewer, agency without agreement, phone")
                SHOTS.mkdir(parents=True, exist_ok=True)
                await outsider.screenshot(path=str(SHOTS / "viewer-no-agreement-phone.png"), full_page=True)
                assert errors == [], errors
            finally:
                await browser.close()
    finally:
        await stop(server, task)
