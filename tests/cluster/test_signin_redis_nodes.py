"""Two gateway nodes on one site file (one PostgreSQL database, one secrets dir) with
``[gateway] redis``: page sign-in needs no sticky sessions. A cookie made on node A works
on node B, sign-out on B ends it on A, failed sign-ins on both count against one limit,
and a Redis that goes away answers 503 to sign-in and cookie requests while bearer
tokens keep working."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import load_config
from gateway.identity.signin import SESSION_COOKIE
from gateway.runtime import Gateway
from tests.conftest import serve_app
from tests.web_helpers import CSRF, LOCKDOWN, WebGateway, from_address, spread_guesses, stop


@pytest.fixture
async def nodes(tmp_path: Path, redis_server):
    """``start(count, database_url=None)``: that many gateways on one site file naming the Redis."""
    started = []

    async def start(count: int, database_url: str | None = None) -> list[WebGateway]:
        path = ensure_demo_site(tmp_path)
        extra = f'\nredis = "{redis_server.url}"' + (f'\ndatabase = "{database_url}"' if database_url else "")
        path.write_text(path.read_text().replace('node = "demo"', 'node = "demo"' + extra, 1))
        logins, used = demo_logins(tmp_path), {}
        gateways = []
        for _ in range(count):
            gateway = Gateway(load_config(path))
            app = create_app(gateway)
            server, task, base_url = await serve_app(app)
            started.append((server, task))
            gateways.append(WebGateway(gateway, app, base_url, tmp_path, logins, used_steps=used))
        return gateways

    yield start
    for server, task in started:
        await stop(server, task)


def events(wg: WebGateway, kind: str):
    return [e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == kind]


async def test_cookie_from_one_node_works_on_the_other_and_sign_out_ends_it_everywhere(nodes, pg_url) -> None:
    a, b = await nodes(2, pg_url)
    on_a = await a.sign_in("admin")
    cookies = httpx.Cookies(on_a.cookies)
    async with on_a, b.client(headers=CSRF, cookies=cookies) as on_b:
        assert (await on_a.get("/api/v1/emergencies")).status_code == 200
        # Node B never saw this sign-in: reads, writes (with the CSRF header) and the session view work there.
        assert (await on_b.get("/api/v1/emergencies")).status_code == 200
        created = await on_b.post("/api/v1/emergencies", json=LOCKDOWN)
        assert created.status_code == 201, created.text
        session = (await on_b.get("/api/v1/auth/session")).json()
        assert session["user"] == "admin" and session["mfa"] is True
        page = await on_b.get("/admin")
        assert page.status_code == 200, page.text
        # Sign out on B; the same cookie is refused on A at once.
        assert (await on_b.post("/api/v1/auth/logout")).status_code == 200
        refused = await on_a.get("/api/v1/emergencies")
        assert refused.status_code == 401, refused.text
        assert (await on_a.get("/admin")).status_code == 303
    assert len(events(a, "auth.logout")) == 1  # one shared database: both nodes see one entry
    declared = events(a, "emergency.declared")
    assert declared and declared[0].actor_id == "admin"


async def test_failed_sign_ins_on_both_nodes_count_against_one_limit(nodes, pg_url) -> None:
    a, b = await nodes(2, pg_url)
    bad = {"username": "principal", "password": "nope", "totp": "123456"}
    async with a.client(headers=CSRF) as on_a, b.client(headers=CSRF) as on_b:
        for client in (on_a, on_b, on_a, on_b, on_a):
            assert (await client.post("/api/v1/auth/login", json=bad)).status_code == 401
        for client in (on_b, on_a):
            r = await client.post("/api/v1/auth/login", json=bad)
            assert r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1
        good = {"username": "principal", "password": a.logins["principal"]["password"], "totp": a.code("principal")}
        assert (await on_b.post("/api/v1/auth/login", json=good)).status_code == 429
        other = {"username": "auditor", "password": a.logins["auditor"]["password"], "totp": a.code("auditor")}
        assert (await on_b.post("/api/v1/auth/login", json=other)).status_code == 200


async def test_guesses_over_nodes_and_addresses_count_against_the_account(nodes, pg_url) -> None:
    """55 wrong passwords from 11 addresses, spread over both nodes: limited after 10 on
    either node; the owner still signs in with password and code on either."""
    a, b = await nodes(2, pg_url)
    answers = await spread_guesses([a, b], "principal")
    assert answers == [401] * 10 + [429] * 45
    password = a.logins["principal"]["password"]
    for node, address in ((a, "192.0.2.77"), (b, "192.0.2.78")):
        async with from_address(node, address) as elsewhere:
            r = await elsewhere.post("/api/v1/auth/login", json={"username": "principal", "password": password})
            assert r.status_code == 429 and "authenticator code" in r.json()["detail"], r.text
            good = {"username": "principal", "password": password, "totp": a.code("principal")}
            assert (await elsewhere.post("/api/v1/auth/login", json=good)).status_code == 200


async def test_idle_lock_on_one_node_is_audited_once(nodes, pg_url) -> None:
    a, b = await nodes(2, pg_url)
    for node in (a, b):
        node.signin.sessions.idle_seconds = 1.0
    client = await a.sign_in("auditor")
    async with client, b.client(headers=CSRF, cookies=httpx.Cookies(client.cookies)) as on_b:
        await asyncio.sleep(0.6)
        assert (await on_b.get("/api/v1/emergencies")).status_code == 200  # activity on B keeps it open on A
        await asyncio.sleep(0.6)
        assert (await client.get("/api/v1/emergencies")).status_code == 200
        await asyncio.sleep(1.3)
        first, second = await asyncio.gather(client.get("/api/v1/emergencies"), on_b.get("/api/v1/emergencies"))
        assert first.status_code == second.status_code == 401
        assert "without activity" in first.json()["detail"] + second.json()["detail"]
    locked = events(a, "auth.session_locked")
    assert len(locked) == 1 and locked[0].actor_id == "auditor", [e.reason for e in locked]


async def test_redis_going_away_answers_503_for_sign_in_only(nodes, redis_server) -> None:
    (wg,) = await nodes(1)  # the embedded SQLite database: only sign-in uses Redis
    cookie_client = await wg.sign_in("admin")
    async with cookie_client, wg.bearer("admin") as bearer, wg.client(headers=CSRF) as anonymous:
        assert (await cookie_client.get("/api/v1/emergencies")).status_code == 200
        redis_server.stop()

        login = await anonymous.post(
            "/api/v1/auth/login",
            json={"username": "officer", "password": wg.logins["officer"]["password"], "totp": wg.code("officer")},
        )
        assert login.status_code == 503, login.text
        assert login.json() == {
            "error": "unavailable",
            "detail": "sign-in is temporarily unavailable; try again in a minute",
        }
        assert SESSION_COOKIE not in login.headers.get("set-cookie", "")

        # A cookie request is told to wait, not signed out (the cookie is not cleared).
        r = await cookie_client.get("/api/v1/emergencies")
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        assert (await cookie_client.post("/api/v1/auth/logout")).status_code == 503
        page = await cookie_client.get("/admin")
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "Sign-in is not working right now" in page.text and "You have not been signed out" in page.text

        # Bearer tokens, health and the ticker do not depend on Redis.
        assert (await bearer.get("/api/v1/emergencies")).status_code == 200
        created = await bearer.post("/api/v1/emergencies", json=LOCKDOWN)
        assert created.status_code == 201, created.text
        assert (await anonymous.get("/healthz")).status_code == 200
        eid = created.json()["id"]
        assert (await bearer.post(f"/api/v1/emergencies/{eid}/confirm")).json()["state"] == "active"

        # Redis back (empty: no persistence): old cookies are unknown, signing in works again.
        redis_server.start()
        assert (await cookie_client.get("/api/v1/emergencies")).status_code == 401
        again = await anonymous.post(
            "/api/v1/auth/login",
            json={"username": "officer", "password": wg.logins["officer"]["password"], "totp": wg.code("officer")},
        )
        assert again.status_code == 200, again.text
    denied = [e for e in events(wg, "auth.login") if e.outcome == "denied"]
    assert any("cannot be reached" in (e.reason or "") for e in denied)
