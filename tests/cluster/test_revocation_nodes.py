"""Taking access back on two nodes sharing PostgreSQL (and Redis for the pages): an
administrator's revocation on node A, or ``sightline accounts revoke`` run as its own
process, cuts the officer's live video on node B within a second; the revoked token is
refused afterwards (replayed on either node, or renewed) and every refusal is audited;
signing out of the pages on one node ends the video opened with that cookie on the other.
Real aiortc viewers, real uvicorn servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergency.audit import AuditEvent
from gateway.app import create_app
from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import load_config
from gateway.identity.signin import SESSION_COOKIE
from gateway.runtime import Gateway
from tests.cluster.test_two_nodes import frames_stop, wait_closed
from tests.conftest import serve_app
from tests.web_helpers import CSRF, LOCKDOWN, WebGateway, stop
from tests.whep_client import WhepViewer

ROOT = Path(__file__).resolve().parents[2]
CUT_WITHIN = 1.0  # seconds from the revocation's answer to the last frame on the other node


@pytest.fixture
async def nodes(tmp_path: Path, redis_server, pg_url):
    """Two gateways on one site file naming the PostgreSQL database and the Redis."""
    path = ensure_demo_site(tmp_path)
    extra = f'\nredis = "{redis_server.url}"\ndatabase = "{pg_url}"'
    path.write_text(path.read_text().replace('node = "demo"', 'node = "demo"' + extra, 1))
    logins, used = demo_logins(tmp_path), {}
    started, gateways = [], []
    for _ in range(2):
        gateway = Gateway(load_config(path))
        app = create_app(gateway)
        server, task, base_url = await serve_app(app)
        started.append((server, task))
        gateways.append(WebGateway(gateway, app, base_url, tmp_path, logins, used_steps=used))
    yield gateways
    for server, task in started:
        await stop(server, task)


async def lockdown(admin) -> str:
    e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
    assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).json()["state"] == "active"
    return e["id"]


async def officer_token(wg: WebGateway) -> dict:
    """A 15-minute token from the officer's password and authenticator code."""
    body = {"username": "officer", "password": wg.logins["officer"]["password"], "code": wg.code("officer")}
    async with wg.client() as c:
        r = await c.post("/api/v1/auth/token", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["mfa"] is True and r.json()["expires_in"] <= 15 * 60
    return r.json()


async def watching(base_url: str, token: str = "", cookies: dict | None = None) -> WhepViewer:
    viewer = WhepViewer(base_url, "hs-front", token, stream="sub", cookies=cookies)
    response = await viewer.start()
    assert response.status_code == 201, response.text
    await viewer.wait_frames(5, timeout=20)
    return viewer


def events(wg: WebGateway, kind: str):
    return [e for e in wg.gateway.audit.entries(limit=100_000) if e.event_type == kind]


async def test_an_administrators_revocation_on_one_node_cuts_video_on_the_other_within_a_second(nodes) -> None:
    a, b = nodes
    async with a.bearer("admin") as admin:
        await lockdown(admin)
        token = (await officer_token(a))["access_token"]
        viewer = await watching(b.base_url, token)
        try:
            listed = (await admin.get("/api/v1/sign-ins")).json()
            assert any(s["person"] == "officer" and s["watching"] for s in listed), listed
            r = await admin.post("/api/v1/people/officer/revoke", json={"reason": "lost phone"})
            revoked = time.monotonic()
            assert r.status_code == 200 and r.json()["sign_ins_ended"] >= 1, r.text
            stopped = await frames_stop(viewer, 5.0)
            cut = (viewer.frame_times[-1] - revoked) if viewer.frame_times else 0.0
            print(f"\nrevocation on node A -> last frame on node B: {cut:.3f} s")
            assert cut <= CUT_WITHIN and stopped <= CUT_WITHIN
            assert await wait_closed(viewer, 3.0) <= 1.5
        finally:
            await viewer.close()

        # the revoked token, replayed on either node: refused and audited; renewal refused too
        for node in (a, b):
            async with node.client(headers={"Authorization": f"Bearer {token}"}) as replay:
                assert (await replay.get("/api/v1/grants/mine")).status_code == 401
                assert (await replay.post("/api/v1/auth/token/renew")).status_code == 401
        again = WhepViewer(b.base_url, "hs-front", token, stream="sub")
        assert (await again.start()).status_code == 401
        await again.close()

    ends = [e for e in events(b, AuditEvent.VIEW_ENDED) if e.actor_id == "officer"]
    assert ends and ends[-1].reason.startswith("access revoked by ") and "lost phone" in ends[-1].reason
    revocations = events(a, AuditEvent.ACCESS_REVOKED)
    assert revocations[-1].actor_id == "admin" and revocations[-1].object == "account:officer"
    failures = [e for e in events(a, AuditEvent.AUTH_FAILURE) if "sign-in has ended" in (e.reason or "")]
    assert failures, "a replayed revoked token is audited"


async def test_sightline_accounts_revoke_cuts_video_on_every_node(nodes) -> None:
    a, b = nodes
    async with a.bearer("admin") as admin:
        await lockdown(admin)
        on_a = await watching(a.base_url, (await officer_token(a))["access_token"])
        on_b = await watching(b.base_url, (await officer_token(b))["access_token"])
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "gateway.cli", "accounts", "revoke", "--config", str(a.data_dir / "site.toml"),
                 "--user", "officer", "--reason", "left the agency"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            revoked = time.monotonic()
            assert done.returncode == 0, done.stdout + done.stderr
            assert "2 sign-in(s) ended" in done.stdout
            for viewer in (on_a, on_b):
                await frames_stop(viewer, 5.0)
                assert viewer.frame_times[-1] - revoked <= CUT_WITHIN
                await wait_closed(viewer, 3.0)
        finally:
            await on_a.close()
            await on_b.close()
    entry = events(a, AuditEvent.ACCESS_REVOKED)[-1]
    assert entry.actor_id.startswith("cli:") and len(entry.details["sign_ins"]) == 2


async def test_signing_out_of_the_pages_on_one_node_ends_that_sessions_video_on_the_other(nodes) -> None:
    a, b = nodes
    async with a.bearer("admin") as admin:
        await lockdown(admin)
    async with await a.sign_in("officer") as page:
        cookie = {SESSION_COOKIE: page.cookies[SESSION_COOKIE]}
        viewer = await watching(b.base_url, cookies=cookie)
        try:
            r = await page.post("/api/v1/auth/logout", headers=CSRF)
            signed_out = time.monotonic()
            assert r.status_code == 200
            await frames_stop(viewer, 5.0)
            assert viewer.frame_times[-1] - signed_out <= CUT_WITHIN
            await wait_closed(viewer, 3.0)
        finally:
            await viewer.close()
    ends = [e for e in events(b, AuditEvent.VIEW_ENDED) if e.actor_id == "officer"]
    assert ends[-1].reason == "signed out"
