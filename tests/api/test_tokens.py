"""Short-lived tokens and what each kind may do, against a real gateway and real aiortc
viewers: a token printed by ``sightline token`` is for automation and WHEP refuses it
with a plain reason; a token from ``POST /api/v1/auth/token`` opens video only with the
authenticator code checked; video opened with a token ends when its sign-in runs out
unrenewed and keeps playing when renewed; renewal is refused when nothing is visible;
the idle lock does not fall on a page whose video plays."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergency.audit import AuditEvent
from gateway.api.whep import CLI_NEVER_VIDEO
from gateway.identity.signin import SESSION_COOKIE
from tests.cluster.test_two_nodes import frames_stop, wait_closed
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop
from tests.whep_client import WhepViewer

ROOT = Path(__file__).resolve().parents[2]
MFA = ("pwd", "otp", "mfa")


@pytest.fixture
async def wg(tmp_path):
    wg, server, task = await start_web_gateway(tmp_path)
    yield wg
    await stop(server, task)


async def lockdown(wg) -> str:
    async with wg.bearer("admin") as admin:
        e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
        assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).json()["state"] == "active"
    return e["id"]


async def token_for(wg, user: str, *, code: bool = True) -> dict:
    body = {"username": user, "password": wg.logins[user]["password"]}
    if code:
        body["code"] = wg.code(user)
    async with wg.client() as c:
        r = await c.post("/api/v1/auth/token", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def events(wg, kind: str):
    return [e for e in wg.gateway.audit.entries(limit=100_000) if e.event_type == kind]


async def test_a_sightline_token_token_never_opens_video_and_says_why(wg) -> None:
    await lockdown(wg)
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "token", "--config", str(wg.data_dir / "site.toml"), "--user", "officer"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    ident = wg.gateway.tokens.authenticate(token)
    assert ident.method == "cli" and ident.actor.mfa is False and ident.sign_in
    viewer = WhepViewer(wg.base_url, "hs-front", token, stream="sub")
    try:
        r = await viewer.start()
        assert r.status_code == 403 and r.json()["detail"] == CLI_NEVER_VIDEO
    finally:
        await viewer.close()
    async with wg.client(headers={"Authorization": f"Bearer {token}"}) as cli:
        assert (await cli.get("/api/v1/cameras/hs-front/snapshot.jpg")).status_code == 403
        assert (await cli.get("/api/v1/grants/mine")).status_code == 200  # automation may still read
        renewal = await cli.post("/api/v1/auth/token/renew")
        assert renewal.status_code == 403  # not a person's short-lived sign-in
    denied = events(wg, AuditEvent.PERMISSION_DENIED)
    assert any("sightline token" in (e.reason or "") and e.actor_id == "officer" for e in denied)


async def test_a_records_clients_token_still_works(wg) -> None:
    token, _ = wg.gateway.tokens.issue("records", ttl=600, amr=("client_credentials",))
    ident = wg.gateway.tokens.authenticate(token)
    assert ident.method == "client_credentials" and ident.scopes


async def test_a_token_needs_the_code_of_an_enrolled_person_and_lives_fifteen_minutes(wg) -> None:
    async with wg.client() as c:
        body = {"username": "officer", "password": wg.logins["officer"]["password"]}
        r = await c.post("/api/v1/auth/token", json=body)
        assert r.status_code == 401 and r.json()["detail"] == "wrong username, password or code"
    refused = [e for e in events(wg, AuditEvent.AUTH_LOGIN) if e.outcome == "denied"]
    assert refused[-1].reason == "TOTP code missing"
    answer = await token_for(wg, "officer")
    assert answer["mfa"] is True and answer["expires_in"] == 900
    claims = wg.gateway.tokens.claims(answer["access_token"])
    assert claims["exp"] - claims["iat"] <= 900 and claims["sid"] == answer["sign_in"]
    record = wg.gateway.sign_ins.get(answer["sign_in"])
    assert record is not None and record.method == "password+totp" and record.mfa


async def test_video_ends_when_its_token_runs_out_unrenewed_and_plays_on_when_renewed(wg) -> None:
    await lockdown(wg)
    tokens = wg.gateway.tokens
    short = [tokens.issue("officer", ttl=3, amr=MFA)[0] for _ in range(2)]
    expires = time.monotonic() + 3
    left, renewed = (WhepViewer(wg.base_url, "hs-front", t, stream="sub") for t in short)
    try:
        for viewer in (left, renewed):
            assert (await viewer.start()).status_code == 201
            await viewer.wait_frames(3, timeout=20)
        async with wg.client(headers={"Authorization": f"Bearer {short[1]}"}) as c:
            r = await c.post("/api/v1/auth/token/renew")
        assert r.status_code == 200, r.text
        fresh = r.json()["access_token"]
        assert tokens.claims(fresh)["sid"] == tokens.claims(short[1])["sid"] and r.json()["mfa"] is True
        await frames_stop(left, 8.0)
        assert left.frame_times[-1] - expires <= 1.0, "video outlived its sign-in by more than a second"
        await wait_closed(left, 3.0)
        count = len(renewed.frame_times)
        await asyncio.sleep(1.0)
        assert len(renewed.frame_times) > count, "a renewed sign-in's video must keep playing"
        assert renewed.pc.connectionState == "connected"
    finally:
        await left.close()
        await renewed.close()
    ends = [e for e in events(wg, AuditEvent.VIEW_ENDED) if e.reason == "sign-in expired without renewal"]
    assert len(ends) == 1
    # the expired token itself is refused, and audited
    async with wg.client(headers={"Authorization": f"Bearer {short[0]}"}) as c:
        assert (await c.get("/api/v1/grants/mine")).status_code == 401
    assert events(wg, AuditEvent.AUTH_FAILURE)


async def test_renewal_is_refused_when_nothing_is_visible_and_after_revocation(wg) -> None:
    answer = await token_for(wg, "officer")
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    async with wg.client(headers=headers) as c:
        r = await c.post("/api/v1/auth/token/renew")  # no emergency: nothing to see
        assert r.status_code == 403 and "nothing is visible" in r.json()["detail"]
        await lockdown(wg)
        assert (await c.post("/api/v1/auth/token/renew")).status_code == 200
        async with wg.bearer("admin") as admin:
            assert (await admin.post("/api/v1/people/officer/revoke", json={})).status_code == 200
        assert (await c.post("/api/v1/auth/token/renew")).status_code == 401
    refused = [e for e in events(wg, AuditEvent.AUTH_TOKEN_RENEWED) if e.outcome == "denied"]
    assert refused and refused[0].actor_id == "officer"


async def test_forged_tokens_and_made_up_sign_ins_are_refused(wg) -> None:
    real = (await token_for(wg, "officer"))["access_token"]
    head, body, _ = real.split(".")
    for forged in (f"{head}.{body}.{'A' * 43}", real[:-2] + ("AA" if not real.endswith("AA") else "BB")):
        async with wg.client(headers={"Authorization": f"Bearer {forged}"}) as c:
            assert (await c.get("/api/v1/grants/mine")).status_code == 401
    # a well-signed token naming no sign-in (as issued before revision 0003) is refused
    from gateway.identity.tokens import TokenAuthority, load_or_create_key

    bare = TokenAuthority(load_or_create_key(wg.gateway.config.secrets_dir), wg.gateway.config.site)
    old = bare.issue("officer", ttl=600, amr=MFA)[0]
    async with wg.client(headers={"Authorization": f"Bearer {old}"}) as c:
        r = await c.get("/api/v1/grants/mine")
        assert r.status_code == 401 and "names no sign-in" in r.json()["detail"]


async def test_the_idle_lock_does_not_fall_on_a_page_whose_video_plays(wg) -> None:
    await lockdown(wg)
    wg.signin.sessions.idle_seconds = 2.0  # the keep-awake loop follows (a quarter of it)
    watching = await wg.sign_in("officer")
    idle = await wg.sign_in("officer")
    async with watching, idle:
        viewer = WhepViewer(
            wg.base_url, "hs-front", "", stream="sub", cookies={SESSION_COOKIE: watching.cookies[SESSION_COOKIE]}
        )
        try:
            assert (await viewer.start()).status_code == 201
            await viewer.wait_frames(3, timeout=20)
            await asyncio.sleep(3.5)  # longer than the idle limit, no request from either page
            assert (await watching.get("/api/v1/auth/session")).status_code == 200
            assert (await idle.get("/api/v1/auth/session")).status_code == 401  # locked (by the sweep, or here)
            assert viewer.pc.connectionState == "connected"
        finally:
            await viewer.close()
    ended = [r for r in wg.gateway.store.sign_ins_of("officer") if r.end_reason]
    assert [r.end_reason for r in ended] == ["locked after a period without activity"]
