"""The pages: sign-in redirects, role homes, and the auditor console on real data."""

from __future__ import annotations

import asyncio

import pytest

from gateway.identity.signin import SESSION_COOKIE
from tests.web_helpers import CSRF, LOCKDOWN, lockdown_and_offer, start_web_gateway, stop

PAGES = {"admin": "/admin", "principal": "/admin", "officer": "/view", "dispatcher": "/dispatch", "auditor": "/audit"}


@pytest.fixture
async def wg(tmp_path):
    gateway, server, task = await start_web_gateway(tmp_path)
    yield gateway
    await stop(server, task)


async def test_pages_need_a_session(wg) -> None:
    async with wg.client() as anon:
        for path in ("/", "/admin", "/view", "/dispatch", "/audit", "/audit/report", "/audit/emergencies/x"):
            r = await anon.get(path)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/signin?next=")
        page = await anon.get("/signin")
        assert page.status_code == 200
        assert 'id="signin-form"' in page.text and 'autocomplete="one-time-code"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert (await anon.get("/static/app.css")).status_code == 200
        assert (await anon.get("/static/common.js")).headers["content-type"].startswith("text/javascript")
        # An open redirect through ?next= is not possible.
        assert 'data-next="/"' in (await anon.get("/signin?next=//evil.example/")).text
        # The bearer-only API still answers 401 without a cookie.
        assert (await anon.get("/api/v1/emergencies")).status_code == 401


@pytest.mark.parametrize("user", sorted(PAGES))
async def test_each_role_lands_on_its_page(wg, user) -> None:
    client = await wg.sign_in(user)
    async with client:
        home = await client.get("/")
        assert home.status_code == 303 and home.headers["location"] == PAGES[user]
        page = await client.get(PAGES[user])
        assert page.status_code == 200, page.text
        name = wg.gateway.config.site.accounts[user].name
        assert name.replace("'", "&#39;") in page.text and 'id="sign-out"' in page.text
        assert f'data-idle-seconds="{30 * 60}"' in page.text
        for other in set(PAGES.values()) - {PAGES[user]}:
            if user == "admin" and other == "/audit":
                continue  # district administrators may read the audit console too
            assert (await client.get(other)).status_code == 403, (user, other)
        # Signed in already: /signin goes home.
        assert (await client.get("/signin")).status_code == 303


async def test_sign_out_then_pages_redirect(wg) -> None:
    client = await wg.sign_in("auditor")
    async with client:
        assert (await client.get("/audit")).status_code == 200
        assert (await client.post("/api/v1/auth/logout", headers=CSRF)).status_code == 200
        assert SESSION_COOKIE not in client.cookies
        assert (await client.get("/audit")).status_code == 303


async def test_audit_console_shows_an_incident_from_real_data(wg) -> None:
    """Declare, confirm, watch, all-clear through the API; then the auditor's pages and
    the JSON they read hold the incident, its viewers and its timeline."""
    officer = await wg.sign_in("officer")
    auditor = await wg.sign_in("auditor")
    async with officer, auditor, wg.bearer("admin") as admin:
        eid, viewer = await lockdown_and_offer(admin, wg.base_url)
        r = await officer.post(
            "/whep/hs-front", content=viewer.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
        assert r.status_code == 201, r.text
        await asyncio.sleep(0.5)
        assert (await admin.post(f"/api/v1/emergencies/{eid}/all-clear")).status_code == 200
        await viewer.close()

        listing = await auditor.get("/audit")
        assert listing.status_code == 200 and 'id="incidents"' in listing.text and "verify-banner" in listing.text
        page = await auditor.get(f"/audit/emergencies/{eid}")
        assert page.status_code == 200
        for marker in (
            'id="by-officer"',
            'id="by-camera"',
            'id="timeline"',
            'id="filters"',
            f"/api/v1/emergencies/{eid}/export?format=pdf",
            f'data-emergency="{eid}"',
        ):
            assert marker in page.text, marker
        assert (await auditor.get("/audit/report")).status_code == 200

        # The JSON the page scripts read, with the auditor's cookie.
        listed = (await auditor.get("/api/v1/emergencies")).json()
        assert listed[0]["id"] == eid and listed[0]["threat_basis"] == LOCKDOWN["threat_basis"]
        record = (await auditor.get(f"/api/v1/emergencies/{eid}/disclosure")).json()
        assert [v["officer"] for v in record["viewers"]] == ["officer"]
        assert record["viewers"][0]["cameras"][0]["camera"] == "hs-front"
        assert [c["camera"] for c in record["cameras"]] == ["hs-front"]
        events = (await auditor.get("/api/v1/audit/events", params={"emergency": eid})).json()
        kinds = [x["event_type"] for x in events["entries"]]
        for kind in ("emergency.declared", "grant.started", "view.started", "view.ended", "emergency.all_clear"):
            assert kind in kinds, kind
        assert (await auditor.get("/api/v1/audit/verify")).json()["ok"] is True
        month = record["emergency"]["declared_at"][:7]
        report = (await auditor.get("/api/v1/reports/monthly", params={"month": month})).json()
        assert any(a["officer"] == "officer" and a["camera"] == "hs-front" for a in report["accesses"])
        csv = await auditor.get(f"/api/v1/emergencies/{eid}/export", params={"format": "csv"})
        assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]

        # The officer may not read the audit console or its data.
        assert (await officer.get("/audit")).status_code == 403
        assert (await officer.get("/api/v1/audit/verify")).status_code == 403
