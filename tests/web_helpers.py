"""Starting a gateway whose demo accounts can sign in, and signing in over HTTP."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import load_config
from gateway.identity import totp
from gateway.identity.signin import CSRF_HEADER, CSRF_VALUE
from gateway.runtime import Gateway

from .conftest import serve_app
from .system_deps import missing

CSRF = {CSRF_HEADER: CSRF_VALUE}
LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}


@dataclass
class WebGateway:
    gateway: Gateway
    app: FastAPI
    base_url: str
    data_dir: Path
    logins: dict[str, dict[str, str]]
    used_steps: dict[str, set[int]] = field(default_factory=dict)
    # how clients check the server's certificate: a context trusting the test CA under TLS
    verify: ssl.SSLContext | bool = True

    @property
    def signin(self):
        return self.app.state.signin

    def code(self, user: str) -> str:
        """A valid code for ``user`` whose step no earlier sign-in used (the server refuses replays).

        Only the current and the next step are used: a code for the previous step
        stops being accepted at the next step boundary, which may fall between
        handing it out and the server checking it.
        """
        secret = self.logins[user]["totp_secret"]
        now = totp.step_at(time.time())
        used = self.used_steps.setdefault(user, set())
        for step in (now, now + 1):
            if step not in used:
                used.add(step)
                return totp.code_at_step(secret, step)
        raise AssertionError(f"signed {user} in more than twice within 30 s; this helper has no fresh code")

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=15, verify=self.verify, **kwargs)

    async def sign_in(self, user: str, *, with_code: bool = True, csrf: bool = True) -> httpx.AsyncClient:
        """A client holding the session cookie (and sending the CSRF header unless told not to)."""
        body = {"username": user, "password": self.logins[user]["password"]}
        if with_code:
            body["totp"] = self.code(user)
        async with self.client() as login:
            r = await login.post("/api/v1/auth/login", json=body, headers=CSRF)
            assert r.status_code == 200, r.text
            cookies = httpx.Cookies(login.cookies)
        return self.client(headers=CSRF if csrf else {}, cookies=cookies)  # not yet opened: use with 'async with'

    def bearer(self, user: str) -> httpx.AsyncClient:
        token = self.gateway.tokens.issue(user, ttl=600, amr=("pwd", "otp", "mfa"))[0]
        return self.client(headers={"Authorization": f"Bearer {token}"})


async def start_web_gateway(data_dir: Path, *, edit=None) -> tuple[WebGateway, uvicorn.Server, asyncio.Task]:
    path = ensure_demo_site(data_dir)
    if edit:
        path.write_text(edit(path.read_text()))
    gateway = Gateway(load_config(path))
    app = create_app(gateway)
    server, task, base_url = await serve_app(app)
    return WebGateway(gateway, app, base_url, data_dir, demo_logins(data_dir)), server, task


async def stop(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 15)


def require_playwright():
    """Playwright's async API; with CI=true a missing install fails the run instead of skipping."""
    try:
        import playwright.async_api as api
    except ImportError as exc:
        missing(f"Playwright is not installed ({exc}); run scripts/test, which installs the [test] extra", module=True)
    return api


async def lockdown_and_offer(admin, base_url: str):
    """Declare and confirm the LOCKDOWN; return (emergency id, a viewer with a recvonly offer set)."""
    from .whep_client import WhepViewer

    e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
    await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")
    viewer = WhepViewer(base_url, "hs-front", token="unused")
    viewer.pc.addTransceiver("video", direction="recvonly")
    await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
    return e["id"], viewer


def from_address(wg: WebGateway, address: str) -> httpx.AsyncClient:
    """A client whose requests reach ``wg``'s app from ``address`` (in process, no socket)."""
    transport = httpx.ASGITransport(app=wg.app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=CSRF, timeout=15)


async def spread_guesses(nodes: list[WebGateway], username: str, addresses: int = 11, each: int = 5) -> list[int]:
    """Wrong passwords for ``username``: ``each`` from every one of ``addresses`` addresses
    (never enough for one address's own limit), taking turns over ``nodes``; the answers."""
    wrong = {"username": username, "password": "not-the-password", "totp": "000000"}
    answers = []
    for i in range(addresses):
        async with from_address(nodes[i % len(nodes)], f"203.0.113.{i + 1}") as client:
            for _ in range(each):
                answers.append((await client.post("/api/v1/auth/login", json=wrong)).status_code)
    return answers
