"""The dispatcher's page in Debian's headless Chromium (Playwright): sign in through the
form, a reason left empty is refused in plain words and nothing typed is lost, a request
waits, an administrator approves it over HTTP and the page shows the emergency active
within seconds; a denial shows the administrator's reason; a call type the policy approves
by itself shows as auto-approved. Big targets and no sideways scrolling on a phone and a
laptop; screenshots go to docs/screenshots/dispatch-{laptop,phone}.png."""

from __future__ import annotations

import time

from tests.browser_helpers import ARGS, CHROMIUM, LAPTOP, PHONE, SHOTS, needs_chromium, playwright_api, sign_in, wait_js
from tests.browser_helpers import check_layout as _check_layout
from tests.web_helpers import WebGateway, start_web_gateway, stop

pytestmark = needs_chromium


async def check_layout(page, label: str) -> None:
    """The page's choice tiles are targets too."""
    await _check_layout(page, label, "main .button, main button, .topbar button, main label.choice")


AUTO = 'confirm_window_seconds = 10\nauto_approve_calls = ["911_call_from_school"]'
REASON = "Caller in room 112 reports a man with a gun in the east hallway"


def item(request_id: str) -> str:
    return f"#my-requests li[data-request='{request_id}']"


async def test_dispatcher_asks_the_school_and_follows_the_answer(tmp_path) -> None:
    wg, server, task = await start_web_gateway(tmp_path, edit=lambda t: t.replace("confirm_window_seconds = 10", AUTO))
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        admin = await wg.sign_in("admin")
        async with admin, playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                laptop_ctx = await browser.new_context(viewport=LAPTOP)
                page = await laptop_ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await sign_in(page, wg, "dispatcher", "/dispatch")
                await page.wait_for_selector("#requests-empty:not([hidden])")
                await page.wait_for_selector("[data-building-status=lincoln-hs]:has-text('No emergency now')")
                body = await page.inner_text("main")
                assert "coming in the next release" not in body
                assert "The school's administrator decides." in body and "You do not see video." in body
                await check_layout(page, "dispatch laptop, empty")

                # An empty reason: a plain error next to the form, nothing sent, nothing typed lost.
                await page.click("label[for=building-lincoln-hs]")
                await page.select_option("#call-type", "officer_request")
                await page.click("label[for=action-SECURE]")
                await page.select_option("#incident-type", "armed_intruder")
                await page.fill("#reason", "   ")
                await page.click("#submit-request")
                await page.wait_for_selector("#form-error:not([hidden])")
                error = await page.inner_text("#form-error")
                assert "Type what is happening" in error and "Nothing was sent" in error, error
                assert await page.evaluate("document.activeElement.id") == "reason"
                assert await page.get_attribute("#reason", "aria-invalid") == "true"
                assert await page.is_checked("#building-lincoln-hs") and await page.is_checked("#action-SECURE")
                assert await page.input_value("#call-type") == "officer_request"
                assert await page.input_value("#incident-type") == "armed_intruder"
                assert await page.input_value("#reason") == "   "
                assert wg.gateway.requests.visible_to(_dispatcher(wg)) == [], "nothing may be sent"

                # What is typed survives a reload (and so the idle sign-out) until it is sent.
                await page.fill("#reason", REASON)
                await page.click("label[for=action-LOCKDOWN]")
                await page.reload()
                await page.wait_for_selector("#form-status:has-text('What you typed before is back')")
                assert await page.input_value("#reason") == REASON
                assert await page.is_checked("#building-lincoln-hs") and await page.is_checked("#action-LOCKDOWN")
                assert await page.input_value("#call-type") == "officer_request"
                # The action choices say what police would see at the chosen school.
                assert "Police would see 5 cameras." == await page.inner_text("[data-shares=LOCKDOWN]")
                assert "Police would see no cameras." == await page.inner_text("[data-shares=HOLD]")

                # Send it: it waits for the school.
                await page.click("#submit-request")
                await page.wait_for_selector("#form-status:has-text('Waiting for Lincoln High School')")
                assert await page.input_value("#reason") == ""
                await page.wait_for_selector("#my-requests li[data-state=pending]")
                pending = (await admin.get("/api/v1/access-requests", params={"pending_only": "true"})).json()
                assert len(pending) == 1 and pending[0]["reason"] == REASON and pending[0]["action"] == "LOCKDOWN"
                rid = pending[0]["id"]
                waiting = await page.inner_text(item(rid))
                assert "Waiting for the school" in waiting and "LOCKDOWN at Lincoln High School" in waiting
                assert REASON in waiting and "Asked at" in waiting
                await page.wait_for_selector("[data-building-status=lincoln-hs]:has-text('you have a request waiting')")

                # The administrator's panel names the dispatcher and the kind of call in plain words.
                admin_ctx = await browser.new_context(viewport=LAPTOP)
                panel = await admin_ctx.new_page()
                await sign_in(panel, wg, "admin", "/admin")
                await panel.wait_for_selector(f"li.request[data-request='{rid}']")
                asked = await panel.inner_text(f"li.request[data-request='{rid}']")
                assert "requested by Lee Park (village 911 dispatch) (Village Police Department)" in asked, asked
                assert "An officer at the scene asks for video: " + REASON in asked, asked
                await admin_ctx.close()

                # The administrator approves over HTTP; the page shows it within a few seconds.
                approved = await admin.post(f"/api/v1/access-requests/{rid}/approve")
                assert approved.status_code == 200, approved.text
                decided = time.monotonic()
                await page.wait_for_selector(
                    f"{item(rid)}[data-state=approved][data-emergency-state=active]", timeout=6000
                )
                shown_after = time.monotonic() - decided
                assert shown_after < 5, shown_after
                text = await page.inner_text(item(rid))
                assert "Approved — emergency active" in text, text
                assert "Emergency active: LOCKDOWN at Lincoln High School" in text, text
                assert "Alex Kim (district safety director) approved it" in text, text
                assert "approved" in await page.inner_text("#requests-announce")
                # The newest answer is also at the top of the page (a phone need not scroll to it).
                assert "LOCKDOWN at Lincoln High School: Approved — emergency active" in await page.inner_text(
                    "#latest"
                )
                await page.wait_for_selector(
                    "[data-building-status=lincoln-hs]:has-text('Emergency active now: LOCKDOWN')"
                )

                # By keyboard: a request for the other school, then denied with a reason.
                await page.focus("#building-washington-ms")
                await page.keyboard.press("Space")
                assert await page.is_checked("#building-washington-ms")
                await page.select_option("#call-type", "other")
                await page.focus("#reason")
                await page.keyboard.type("Caller not sure where the noise came from")
                await page.keyboard.press("Tab")
                assert await page.evaluate("document.activeElement.id") == "submit-request"
                await page.keyboard.press("Enter")
                await page.wait_for_selector("#my-requests li[data-state=pending]")
                other = (await admin.get("/api/v1/access-requests", params={"pending_only": "true"})).json()[0]
                assert other["building"] == "washington-ms"
                denied = await admin.post(
                    f"/api/v1/access-requests/{other['id']}/deny",
                    json={"reason": "No threat at the school; the office checked the yard"},
                )
                assert denied.status_code == 200, denied.text
                await page.wait_for_selector(f"{item(other['id'])}[data-state=denied]", timeout=6000)
                text = await page.inner_text(item(other["id"]))
                assert "Denied by the school" in text and "No threat at the school; the office checked the yard" in text

                # A call type the district's plan approves by itself.
                await page.select_option("#call-type", "911_call_from_school")
                await page.fill("#reason", "911 call from the school office: smoke in the gym")
                await page.click("label[for=action-EVACUATE]")
                await page.click("#submit-request")
                await page.wait_for_selector("#form-status:has-text('Approved at once')")
                await page.wait_for_selector("#my-requests li[data-decided-by=policy][data-emergency-state=active]")
                text = await page.inner_text("#my-requests li[data-decided-by=policy]")
                assert "Auto-approved by the district's plan" in text and "EVACUATE at Washington Middle School" in text

                # Newest first.
                order = await page.eval_on_selector_all(
                    "#my-requests li[data-request]", "els => els.map(e => e.dataset.state)"
                )
                assert order == ["approved", "denied", "approved"], order

                # An API refusal in plain words: the school has an emergency open already (not recorded).
                await page.fill("#reason", "Second 911 call from the school office")
                await page.click("#submit-request")
                await page.wait_for_selector("#form-error:not([hidden])")
                error = await page.inner_text("#form-error")
                assert "already has an emergency open" in error and "not recorded" in error, error
                assert await page.input_value("#reason") == "Second 911 call from the school office"

                await page.evaluate("window.scrollTo(0, 0)")
                await check_layout(page, "dispatch laptop")
                await page.screenshot(path=str(SHOTS / "dispatch-laptop.png"), full_page=True)

                # The same page on a phone (same session).
                phone_ctx = await browser.new_context(
                    viewport=PHONE, color_scheme="dark", storage_state=await laptop_ctx.storage_state()
                )
                phone = await phone_ctx.new_page()
                phone.on("pageerror", lambda exc: errors.append(str(exc)))
                await phone.goto(f"{wg.base_url}/dispatch")
                await phone.wait_for_selector(f"{item(rid)}[data-emergency-state=active]")
                await wait_js(phone, "document.querySelectorAll('#my-requests li[data-request]').length === 3")
                await check_layout(phone, "dispatch phone")
                await phone.screenshot(path=str(SHOTS / "dispatch-phone.png"), full_page=True)
                await phone_ctx.close()
                assert errors == [], errors
            finally:
                await browser.close()
    finally:
        await stop(server, task)


def _dispatcher(wg: WebGateway):
    from emergency.model import Actor

    return Actor.from_account(wg.gateway.config.site.accounts["dispatcher"], mfa=True)
