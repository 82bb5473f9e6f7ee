"""An officer signs in with their agency's OpenID Connect provider in Debian's headless
Chromium (the real provider of tests/oidc_provider.py), and watches video once the
district declares a lockdown; a colleague whose provider proved no second factor signs
in too, is told why video stays closed, and gets none."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from emergency.audit import AuditEvent
from tests.browser_helpers import (
    ARGS,
    CHROMIUM,
    FRAMES_DECODED,
    PHONE,
    SHOTS,
    check_layout,
    needs_chromium,
    playwright_api,
)
from tests.oidc_helpers import OFFICER, oidc_gateway
from tests.oidc_provider import Provider, User
from tests.web_helpers import LOCKDOWN

pytestmark = needs_chromium

NO_MFA = User(sub="d-0912", name="Officer Casey Lin", groups=["patrol"], badge="912", amr=["pwd"])


async def sign_in_with_agency(page, base_url: str) -> None:
    await page.goto(f"{base_url}/view")
    assert "/signin" in page.url
    await page.click("a.provider-button:has-text('Sign in with Village Police Department')")
    await page.wait_for_url(f"{base_url}/view", timeout=15_000)


async def test_officer_signs_in_with_the_agency_and_watches_video(tmp_path) -> None:
    with Provider() as op:
        op.add_user(dataclasses.replace(OFFICER))
        op.add_user(NO_MFA)
        async with oidc_gateway(tmp_path, op) as wg:
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    ctx = await browser.new_context(viewport=PHONE)
                    officer = await ctx.new_page()
                    errors: list[str] = []
                    officer.on("pageerror", lambda exc: errors.append(str(exc)))
                    await officer.goto(f"{wg.base_url}/signin?next=%2Fview")
                    focused = await officer.evaluate("document.activeElement.textContent")
                    assert focused == "Sign in with Village Police Department"
                    await check_layout(officer, "sign-in with a provider, phone")
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    await officer.screenshot(path=str(SHOTS / "signin-agency-phone.png"), full_page=True)

                    await sign_in_with_agency(officer, wg.base_url)
                    assert "Officer Jordan Blake" in await officer.inner_text(".who-name")
                    assert await officer.locator("#mfa-notice").count() == 0
                    await officer.wait_for_selector("#view-status:has-text('No emergency gives you access')")

                    async with wg.bearer("admin") as admin:
                        e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
                        assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
                    confirmed = time.monotonic()
                    decoded = 0
                    while time.monotonic() - confirmed < 8.0 and not decoded:
                        decoded = await officer.evaluate(FRAMES_DECODED)
                        await asyncio.sleep(0.1)
                    assert decoded > 0, "the officer signed in through the agency sees no video"

                    # A colleague whose provider proved no second factor: signed in, told why, no video.
                    op.user = op.users[NO_MFA.sub]
                    other_ctx = await browser.new_context(viewport=PHONE)
                    other = await other_ctx.new_page()
                    other.on("pageerror", lambda exc: errors.append(str(exc)))
                    await sign_in_with_agency(other, wg.base_url)
                    notice = await other.inner_text("#mfa-notice")
                    assert "did not prove a second factor, and video needs one" in notice
                    assert "Ask Village Police Department IT" in notice
                    await asyncio.sleep(2.0)
                    assert await other.evaluate(FRAMES_DECODED) == 0
                    await other.screenshot(path=str(SHOTS / "viewer-agency-no-mfa-phone.png"), full_page=True)
                    assert errors == []
                finally:
                    await browser.close()
            views = [v for v in wg.gateway.audit.entries(limit=100_000) if v.event_type == AuditEvent.VIEW_STARTED]
            assert {v.actor_id for v in views} == {"village-pd:" + OFFICER.sub}
