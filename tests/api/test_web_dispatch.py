"""The dispatcher's page over real HTTP: who may open it, the form it offers, and the JSON
its script reads and posts with the dispatcher's session cookie (and CSRF header)."""

from __future__ import annotations

import html
import re

import pytest

from tests.web_helpers import start_web_gateway, stop

AUTO = 'confirm_window_seconds = 10\nauto_approve_calls = ["911_call_from_school", "shots_fired"]'


@pytest.fixture
async def wg(tmp_path):
    gateway, server, task = await start_web_gateway(
        tmp_path, edit=lambda text: text.replace("confirm_window_seconds = 10", AUTO)
    )
    yield gateway
    await stop(server, task)


async def test_the_dispatcher_gets_the_request_form(wg) -> None:
    client = await wg.sign_in("dispatcher")
    async with client:
        page = await client.get("/dispatch")
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "coming in the next release" not in text
    for marker in (
        'id="request-form"',
        'name="building"',
        'id="call-type"',
        'name="action"',
        'id="incident-type"',
        'id="reason"',
        'id="form-error"',
        'id="my-requests"',
        "/static/dispatch.js",
    ):
        assert marker in page.text, marker
    assert re.search(r'<button type="submit"[^>]*>Ask the school for camera access</button>', page.text)
    # Every building of the district, as a big choice; the actions the API takes; LOCKDOWN first and chosen.
    for b in wg.gateway.config.site.buildings.values():
        assert f'value="{b.id}"' in page.text and b.name in text
    for action in ("LOCKDOWN", "SECURE", "EVACUATE", "HOLD", "SHELTER"):
        assert f'id="action-{action}" value="{action}"' in page.text
    assert 'value="LOCKDOWN" checked' in page.text
    # Call types in plain words; the policy's auto-approved ones are marked and all offered.
    assert (
        '<option value="911_call_from_school" data-auto="1">911 call from inside the school (approved at once)' in text
    )
    assert '<option value="shots_fired" data-auto="1">Shots fired' in page.text
    assert '<option value="officer_request">An officer at the scene asks for video</option>' in page.text
    # Who decides, and what is true about video for a dispatcher.
    assert "The school's administrator decides." in text
    assert "You do not see video." in text and "Village Police Department" in text
    assert 'maxlength="500"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("user", ["officer", "auditor", "admin"])
async def test_other_roles_may_not_open_it(wg, user) -> None:
    client = await wg.sign_in(user)
    async with client:
        page = await client.get("/dispatch")
    assert page.status_code == 403
    assert "Not your page" in page.text and "for dispatchers" in page.text
    assert 'id="request-form"' not in page.text and "page-data" not in page.text


async def test_without_a_session_it_goes_to_sign_in(wg) -> None:
    async with wg.client() as anon:
        r = await anon.get("/dispatch")
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fdispatch"


async def test_the_json_the_page_reads_and_posts(wg) -> None:
    """A request waits, an administrator approves it (the emergency is active), a second is
    denied with a reason, a third is approved by the policy; the dispatcher reads only their
    own requests and the emergencies without the threat text."""
    dispatcher = await wg.sign_in("dispatcher")
    admin = await wg.sign_in("admin")
    async with dispatcher, admin:
        # The cookie alone (no CSRF header) may not post.
        async with wg.client(cookies=dispatcher.cookies) as bare:
            refused = await bare.post(
                "/api/v1/access-requests",
                json={"building": "lincoln-hs", "call_type": "officer_request", "reason": "x"},
            )
        assert refused.status_code == 403 and refused.json()["error"] == "csrf"

        # What the page says for an empty reason comes from its own check; the API agrees.
        blank = await dispatcher.post(
            "/api/v1/access-requests", json={"building": "lincoln-hs", "call_type": "officer_request", "reason": "   "}
        )
        assert blank.status_code == 422 and blank.json()["detail"].startswith("reason")

        asked = await dispatcher.post(
            "/api/v1/access-requests",
            json={
                "building": "lincoln-hs",
                "call_type": "officer_request",
                "action": "LOCKDOWN",
                "incident_type": "armed_intruder",
                "reason": "Caller in room 112 reports a man with a gun",
            },
        )
        assert asked.status_code == 201 and asked.json()["state"] == "pending", asked.text
        approved = await admin.post(f"/api/v1/access-requests/{asked.json()['id']}/approve")
        assert approved.status_code == 200 and approved.json()["state"] == "approved"

        other = await dispatcher.post(
            "/api/v1/access-requests",
            json={"building": "washington-ms", "call_type": "other", "reason": "Caller unsure"},
        )
        denied = await admin.post(
            f"/api/v1/access-requests/{other.json()['id']}/deny", json={"reason": "No threat at the school"}
        )
        assert denied.json()["state"] == "denied"

        auto = await dispatcher.post(
            "/api/v1/access-requests",
            json={
                "building": "washington-ms",
                "call_type": "911_call_from_school",
                "action": "SECURE",
                "reason": "911 call from the office",
            },
        )
        assert auto.json()["state"] == "approved" and auto.json()["decided_by"] == "policy"

        mine = (await dispatcher.get("/api/v1/access-requests")).json()
        assert [r["id"] for r in mine] == [auto.json()["id"], other.json()["id"], asked.json()["id"]]  # newest first
        assert {r["requested_by"] for r in mine} == {"dispatcher"}
        assert mine[1]["decision_reason"] == "No threat at the school" and mine[1]["decided_by"] == "admin"

        emergencies = {e["id"]: e for e in (await dispatcher.get("/api/v1/emergencies")).json()}
        first = emergencies[approved.json()["emergency"]]
        assert first["state"] == "active" and first["action"] == "LOCKDOWN" and first["building"] == "lincoln-hs"
        assert emergencies[auto.json()["emergency"]]["action"] == "SECURE"
        assert all("threat_basis" not in e for e in emergencies.values())

        # A dispatcher still sees no camera and no video.
        assert (await dispatcher.get("/api/v1/cameras")).json() == []
        still = await dispatcher.get("/api/v1/cameras/hs-front/snapshot.jpg")
        assert still.status_code == 403 and still.json()["detail"] == "role_not_permitted"

        # The page names the administrator who decided, from its page data.
        page = await dispatcher.get("/dispatch")
        assert '"admin": "Alex Kim (district safety director)"' in page.text
