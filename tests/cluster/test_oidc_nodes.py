"""The OpenID Connect sign-in needs no sticky sessions: two nodes on one site file (one
PostgreSQL database, one secrets dir, one Redis). The sign-in starts on node A and the
provider's redirect lands on node B (as a load balancer may send it); the session works
on both, and the same callback replayed on A is refused (its state was spent on B)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from emergency.audit import AuditEvent
from gateway.app import create_app
from gateway.cli.demo import ensure_demo_site
from gateway.config import load_config
from gateway.identity.credentials import CredentialBox
from gateway.identity.oidc import FLOW_COOKIE
from gateway.identity.signin import SESSION_COOKIE
from gateway.runtime import Gateway
from tests.conftest import free_port, serve_app
from tests.oidc_helpers import OFFICER, authorize, callback_path, oidc_table, start_flow
from tests.oidc_provider import Provider
from tests.web_helpers import CSRF, stop


@pytest.fixture
def provider():
    with Provider() as op:
        op.add_user(dataclasses.replace(OFFICER))
        yield op


async def test_a_sign_in_started_on_one_node_finishes_on_the_other(tmp_path: Path, provider, pg_url, redis_server):
    port_a = free_port()
    public = f"http://127.0.0.1:{port_a}"
    path = ensure_demo_site(tmp_path)
    sealed = CredentialBox.for_dir(tmp_path / "secrets").seal(provider.client_secret)
    text = path.read_text().replace(
        'node = "demo"\n',
        f'node = "demo"\npublic_url = "{public}"\nredis = "{redis_server.url}"\ndatabase = "{pg_url}"\n',
        1,
    )
    path.write_text(text.replace('id = "village-pd"\n', f'id = "village-pd"\n{oidc_table(provider, sealed)}\n', 1))
    provider.redirect_uris = [f"{public}/signin/oidc/callback"]
    started = []
    try:
        urls = []
        for port in (port_a, None):
            gateway = Gateway(load_config(path))
            server, task, url = await serve_app(create_app(gateway), port)
            started.append((server, task, gateway))
            urls.append(url)
        a_url, b_url = urls
        async with httpx.AsyncClient(base_url=a_url, headers=CSRF, timeout=15) as on_a:
            callback = callback_path(await authorize(await start_flow(on_a)))
            flow = on_a.cookies.get(FLOW_COOKIE)
            async with httpx.AsyncClient(base_url=b_url, headers=CSRF, timeout=15) as on_b:
                on_b.cookies.set(FLOW_COOKIE, flow, path="/signin/oidc")
                done = await on_b.get(callback)
                assert done.status_code == 200, done.text
                session = on_b.cookies.get(SESSION_COOKIE)
            on_a.cookies.set(SESSION_COOKIE, session)
            me = (await on_a.get("/api/v1/auth/session")).json()
            assert me["user"] == f"village-pd:{OFFICER.sub}" and me["mfa"] is True
            replay = await on_a.get(callback)
            assert replay.status_code == 400
        gateway_a = started[0][2]
        refused = [e for e in gateway_a.audit.entries(limit=10_000) if e.event_type == AuditEvent.OIDC_REFUSED]
        assert [e.reason for e in refused] == ["the callback's state was already used (a replay)"]
    finally:
        for server, task, _ in started:
            await stop(server, task)
