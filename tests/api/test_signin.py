"""Web sign-in: password + TOTP, the session cookie, idle lock, CSRF and rate limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.identity import totp
from gateway.identity.logins import hash_password, verify_password
from gateway.identity.signin import SESSION_COOKIE
from tests.web_helpers import (
    CSRF,
    LOCKDOWN,
    from_address,
    lockdown_and_offer,
    spread_guesses,
    start_web_gateway,
    stop,
)


@pytest.fixture
async def web(tmp_path):
    started = []

    async def start(edit=None):
        wg, server, task = await start_web_gateway(tmp_path, edit=edit)
        started.append((server, task))
        return wg

    yield start
    for server, task in started:
        await stop(server, task)


def logins_of(wg, event="auth.login"):
    return [e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == event]


# ------------------------------------------------------------------ unit: TOTP and hashes


def test_totp_matches_rfc6238_vectors() -> None:
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    # RFC 6238 appendix B (SHA1), last six digits
    assert totp.code_at(secret, 59) == "287082"
    assert totp.code_at(secret, 1111111109) == "081804"
    assert totp.code_at(secret, 1234567890) == "005924"
    assert totp.code_at(secret, 2000000000) == "279037"


def test_totp_window_is_one_step_either_side() -> None:
    secret = totp.new_secret()
    t = 1_700_000_000
    step = totp.step_at(t)
    assert totp.verify(secret, totp.code_at(secret, t), t) == step
    assert totp.verify(secret, totp.code_at(secret, t - 30), t) == step - 1
    assert totp.verify(secret, totp.code_at(secret, t + 30), t) == step + 1
    assert totp.verify(secret, totp.code_at(secret, t - 60), t) is None
    for bad in ("", "12345", "1234567", "abcdef", None):
        assert totp.verify(secret, bad, t) is None
    assert totp.otpauth_uri(secret, "officer").startswith("otpauth://totp/Sightline%3Aofficer?secret=")


def test_password_hash_round_trip() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong horse", stored)
    assert not verify_password("anything", None)
    assert not verify_password("anything", "garbage")


def test_plain_totp_secret_in_site_file_is_refused(tmp_path) -> None:
    from gateway.cli.demo import sample_site_toml
    from gateway.config import ConfigError, load_config

    path = tmp_path / "site.toml"
    path.write_text(sample_site_toml({"officer": {"password_hash": hash_password("x"), "totp_secret": "JBSWY3DP"}}))
    with pytest.raises(ConfigError, match="plain text"):
        load_config(path)
    path.write_text(sample_site_toml({"officer": {"password_hash": "md5$abc"}}))
    with pytest.raises(ConfigError, match="password_hash"):
        load_config(path)


# ------------------------------------------------------------------ sign-in over HTTP


async def test_sign_in_with_password_and_code_sets_cookie_and_api_works(web) -> None:
    wg = await web()
    async with wg.client() as client:
        r = await client.post(
            "/api/v1/auth/login",
            headers=CSRF,
            json={"username": "admin", "password": wg.logins["admin"]["password"], "totp": wg.code("admin")},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user"] == "admin" and body["role"] == "district_admin" and body["mfa"] is True
        assert body["amr"] == ["pwd", "otp", "mfa"] and body["expires"] and body["name"].startswith("Alex Kim")
        cookie = r.headers["set-cookie"]
        assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain http on loopback; https sets it
        assert "Authorization" not in client.headers
        # The cookie alone authenticates the API; with the CSRF header it may change state.
        assert (await client.get("/api/v1/emergencies")).status_code == 200
        created = await client.post("/api/v1/emergencies", json=LOCKDOWN, headers=CSRF)
        assert created.status_code == 201, created.text
        assert (await client.get("/api/v1/auth/session")).json()["user"] == "admin"
        # Sign out ends the session on the server.
        stolen = client.cookies[SESSION_COOKIE]
        assert (await client.post("/api/v1/auth/logout", headers=CSRF)).status_code == 200
    async with wg.client(cookies={SESSION_COOKIE: stolen}) as replay:
        assert (await replay.get("/api/v1/emergencies")).status_code == 401

    ok = [e for e in logins_of(wg) if e.outcome == "success"]
    assert len(ok) == 1 and ok[0].actor_id == "admin" and ok[0].source == "127.0.0.1"
    assert ok[0].details["amr"] == ["pwd", "otp", "mfa"]
    assert logins_of(wg, "auth.logout")
    declared = next(e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == "emergency.declared")
    assert declared.actor_id == "admin"


@pytest.mark.parametrize("case", ["bad password", "bad TOTP", "replay", "missing code", "unknown account"])
async def test_failed_sign_ins_are_refused_and_audited(web, case) -> None:
    wg = await web()
    secret = wg.logins["officer"]["totp_secret"]
    password = wg.logins["officer"]["password"]
    code = wg.code("officer")
    body = {"username": "officer", "password": password, "totp": code}
    async with wg.client(headers=CSRF) as client:
        if case == "bad password":
            body["password"] = password + "x"
            reason = "bad password"
        elif case == "bad TOTP":
            body["totp"] = next(c for c in ("000000", "111111", "222222") if totp.verify(secret, c) is None)
            reason = "bad TOTP"
        elif case == "replay":
            first = await client.post("/api/v1/auth/login", json=body)
            assert first.status_code == 200
            client.cookies.clear()
            reason = "TOTP code already used (replay)"
        elif case == "missing code":
            del body["totp"]
            reason = "TOTP code missing"
        else:
            body["username"] = "nobody"
            reason = "unknown account"
        r = await client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "unauthorized", "detail": "wrong username, password or code"}
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    denied = [e for e in logins_of(wg) if e.outcome == "denied"]
    assert len(denied) == 1 and denied[0].reason == reason and denied[0].source == "127.0.0.1"
    # Neither the password nor the code is ever written to the log.
    for e in wg.gateway.audit.entries(limit=10_000):
        text = repr(e)
        assert password not in text and body.get("password", password) not in text and code not in text


async def test_password_only_officer_gets_no_video(web) -> None:
    """An officer without an enrolled authenticator can sign in, but not strongly: no video."""

    def drop_officer_totp(text: str) -> str:
        start = text.index('id = "officer"')
        line = text.index("totp_secret = ", start)
        return text[:line] + text[text.index("\n", line) + 1 :]

    wg = await web(edit=drop_officer_totp)
    officer = await wg.sign_in("officer", with_code=False)
    async with officer, wg.bearer("admin") as admin:
        session = (await officer.get("/api/v1/auth/session")).json()
        assert session["amr"] == ["pwd"] and session["mfa"] is False
        eid, viewer = await lockdown_and_offer(admin, wg.base_url)
        assert wg.gateway.emergencies.get(eid).state == "active"
        r = await officer.post(
            "/whep/hs-front", content=viewer.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
        await viewer.close()
        assert r.status_code == 403, r.text
        assert r.json()["detail"] == "mfa_required"
    ok = [x for x in logins_of(wg) if x.outcome == "success"]
    assert ok[-1].details["amr"] == ["pwd"] and "password only" in ok[-1].reason


async def test_officer_with_code_may_watch_using_the_cookie(web) -> None:
    wg = await web()
    officer = await wg.sign_in("officer")
    async with officer, wg.bearer("admin") as admin:
        eid, viewer = await lockdown_and_offer(admin, wg.base_url)
        r = await officer.post(
            "/whep/hs-front", content=viewer.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
        assert r.status_code == 201, r.text
        gone = await officer.delete(r.headers["location"])
        assert gone.status_code == 204
        await viewer.close()


async def test_idle_session_is_locked_and_audited(web) -> None:
    wg = await web()
    wg.signin.sessions.idle_seconds = 2.0  # margins of 0.8 s or more: a loaded machine must not lock it early
    client = await wg.sign_in("auditor")
    async with client:
        for _ in range(3):  # activity keeps it open (sliding expiry)
            await asyncio.sleep(0.6)
            assert (await client.get("/api/v1/emergencies")).status_code == 200
        # Passive (background) requests do not count as activity.
        await asyncio.sleep(1.2)
        assert (
            await client.get("/api/v1/auth/session", headers={"X-Sightline-Activity": "passive"})
        ).status_code == 200
        await asyncio.sleep(1.2)
        r = await client.get("/api/v1/emergencies")
        assert r.status_code == 401, r.text
        assert "without activity" in r.json()["detail"]
        assert f"{SESSION_COOKIE}=;" in r.headers.get("set-cookie", "")
        # The page sends the user to sign in, saying why.
        page = await client.get("/audit")
        assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=%2Faudit")
    locked = logins_of(wg, "auth.session_locked")
    assert locked and locked[0].actor_id == "auditor"
    assert len(wg.signin.sessions) == 0


async def test_an_abandoned_session_is_locked_and_audited_without_any_request(web, monkeypatch) -> None:
    """The officer closes the laptop: no request ever comes back, the entry is still made."""
    import gateway.app

    monkeypatch.setattr(gateway.app, "SESSION_SWEEP_SECONDS", 0.2)
    wg = await web()
    wg.signin.sessions.idle_seconds = 0.5
    client = await wg.sign_in("officer")
    await client.aclose()
    deadline = time.monotonic() + 5
    while not logins_of(wg, "auth.session_locked"):
        assert time.monotonic() < deadline, "the idle session was never locked"
        await asyncio.sleep(0.1)
    (locked,) = logins_of(wg, "auth.session_locked")
    assert locked.actor_id == "officer" and locked.reason == "no activity within the idle limit"
    assert len(wg.signin.sessions) == 0


async def test_cookie_requests_that_change_state_need_the_csrf_header(web) -> None:
    wg = await web()
    client = await wg.sign_in("admin", csrf=False)
    async with client:
        assert (await client.get("/api/v1/emergencies")).status_code == 200  # reads are fine
        r = await client.post("/api/v1/emergencies", json=LOCKDOWN)
        assert r.status_code == 403 and r.json()["error"] == "csrf"
        r = await client.post("/api/v1/emergencies", json=LOCKDOWN, headers={"X-Requested-With": "XMLHttpRequest"})
        assert r.status_code == 403
        assert (await client.post("/api/v1/auth/logout")).status_code == 403
        assert (await client.post("/api/v1/emergencies", json=LOCKDOWN, headers=CSRF)).status_code == 201
    # Bearer tokens are not cookies: no CSRF header needed.
    async with wg.bearer("admin") as admin:
        eid = (await admin.get("/api/v1/emergencies")).json()[0]["id"]
        assert (await admin.post(f"/api/v1/emergencies/{eid}/cancel")).status_code == 200
    refused = [e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == "permission.denied"]
    assert refused and "CSRF" in refused[0].reason


async def test_failed_sign_ins_are_rate_limited(web) -> None:
    wg = await web()
    async with wg.client(headers=CSRF) as client:
        bad = {"username": "principal", "password": "nope", "totp": "123456"}
        for _ in range(5):
            assert (await client.post("/api/v1/auth/login", json=bad)).status_code == 401
        r = await client.post("/api/v1/auth/login", json=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # Even the right password is refused while limited (and not checked).
        good = {"username": "principal", "password": wg.logins["principal"]["password"], "totp": wg.code("principal")}
        assert (await client.post("/api/v1/auth/login", json=good)).status_code == 429
        # Another account from the same address is not blocked by this one's failures.
        other = {"username": "auditor", "password": wg.logins["auditor"]["password"], "totp": wg.code("auditor")}
        assert (await client.post("/api/v1/auth/login", json=other)).status_code == 200
    denied = [e for e in logins_of(wg) if e.outcome == "denied"]
    assert [e.reason for e in denied].count("bad password") == 5
    # Refusals without checking: the first of the minute in full, the rest counted (gateway/identity/failures.py).
    wg.app.state.auth_failures.flush(everything=True)
    summaries = [e for e in logins_of(wg, "auth.failures") if e.details["kind"] == "refused sign-in"]
    full = sum("too many failed sign-ins" in (e.reason or "") for e in denied)
    assert full >= 1 and full + sum(e.details["count"] for e in summaries) == 2


def drop_totp(user: str):
    def edit(text: str) -> str:
        start = text.index(f'id = "{user}"')
        line = text.index("totp_secret = ", start)
        return text[:line] + text[text.index("\n", line) + 1 :]

    return edit


async def test_guesses_from_many_addresses_are_limited_per_account_but_the_owner_gets_in(web) -> None:
    """55 wrong passwords from 11 addresses (5 each, under every per-address limit): after 10
    the account answers 429 to everything but its password with a fresh code."""
    wg = await web()
    answers = await spread_guesses([wg], "principal")
    assert answers == [401] * 10 + [429] * 45
    password = wg.logins["principal"]["password"]
    async with from_address(wg, "192.0.2.77") as elsewhere:
        # the right password alone, or with a wrong code, gets the same answer as a wrong one
        for body in ({"password": password}, {"password": password, "totp": "000000"}, {"password": "x"}):
            r = await elsewhere.post("/api/v1/auth/login", json={"username": "principal", **body})
            assert r.status_code == 429, r.text
            assert "authenticator code" in r.json()["detail"] and int(r.headers["retry-after"]) > 60
        # the owner: password and code, from an address never seen before
        r = await elsewhere.post(
            "/api/v1/auth/login", json={"username": "principal", "password": password, "totp": wg.code("principal")}
        )
        assert r.status_code == 200, r.text
    # other accounts are not affected
    async with from_address(wg, "203.0.113.1") as attacker:
        other = {"username": "auditor", "password": wg.logins["auditor"]["password"], "totp": wg.code("auditor")}
        assert (await attacker.post("/api/v1/auth/login", json=other)).status_code == 200
    denied = [e for e in logins_of(wg) if e.outcome == "denied" and e.actor_id == "principal"]
    assert sum(e.reason == "bad password" for e in denied) == 10
    assert sum("limited after failures from several addresses" in (e.reason or "") for e in denied) >= 2
    ok = [e for e in logins_of(wg) if e.outcome == "success" and e.actor_id == "principal"]
    assert len(ok) == 1 and ok[0].source == "192.0.2.77"


async def test_an_account_without_a_second_factor_is_kept_for_its_known_addresses(web) -> None:
    """Without an authenticator the password is all there is: while the account is under
    attack, new addresses are refused unchecked, addresses it signed in from still work."""
    wg = await web(edit=drop_totp("officer"))
    password = wg.logins["officer"]["password"]
    async with from_address(wg, "192.0.2.10") as desk:
        assert (await desk.post("/api/v1/auth/login", json={"username": "officer", "password": password})).is_success
    assert (await spread_guesses([wg], "officer"))[10:] == [429] * 45
    async with from_address(wg, "192.0.2.99") as elsewhere:
        r = await elsewhere.post("/api/v1/auth/login", json={"username": "officer", "password": password})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 60
    async with from_address(wg, "192.0.2.10") as desk:
        r = await desk.post("/api/v1/auth/login", json={"username": "officer", "password": password})
        assert r.status_code == 200, r.text
        # a known address is still held to its own limits
        for _ in range(5):
            assert (
                await desk.post("/api/v1/auth/login", json={"username": "officer", "password": "x"})
            ).status_code == 401
        r = await desk.post("/api/v1/auth/login", json={"username": "officer", "password": password})
        assert r.status_code == 429


async def test_bad_login_bodies_are_client_errors(web) -> None:
    wg = await web()
    async with wg.client(headers=CSRF) as client:
        for body in (
            {},
            {"username": "admin"},
            {"username": "", "password": "x"},
            {"username": "a" * 500, "password": "x"},
            {"username": "admin", "password": "x", "extra": 1},
            [1, 2],
        ):
            r = await client.post("/api/v1/auth/login", json=body)
            assert r.status_code == 422, (body, r.text)
        r = await client.post("/api/v1/auth/login", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422)
    async with wg.client(cookies={SESSION_COOKIE: "forged"}) as forged:
        t0 = time.monotonic()
        r = await forged.get("/api/v1/emergencies")
        assert r.status_code == 401 and time.monotonic() - t0 < 5


async def test_failures_from_a_shared_address_cannot_lock_out_the_agency_behind_it(web) -> None:
    """An attacker behind the patrol cars' shared VPN/NAT address sends more failures than
    the per-address limit, under many usernames. Officers who signed in from there before
    still get in; a person new to the address gets in with password and a fresh code; the
    attacker (and a wrong code) gets 429 with a plain message and Retry-After, audited."""
    wg = await web(drop_totp("outsider"))
    nat = "198.51.100.20"
    async with from_address(wg, nat) as car:  # the officer signed in from the cars' address before
        good = {"username": "officer", "password": wg.logins["officer"]["password"], "totp": wg.code("officer")}
        assert (await car.post("/api/v1/auth/login", json=good)).status_code == 200
    async with from_address(wg, nat) as attacker:
        for i in range(24):  # 4 tries per made-up name: under the per-name limit, over the address's
            guess = {"username": f"deputy{i // 4}", "password": "Winter2025!", "totp": "000000"}
            await attacker.post("/api/v1/auth/login", json=guess)
        r = await attacker.post("/api/v1/auth/login", json={"username": "deputy9", "password": "x", "totp": "1"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "from your network" in r.json()["detail"] and "seconds" in r.json()["detail"]
        # the right password of a person new here is not enough without a fresh code ...
        dispatcher = {"username": "dispatcher", "password": wg.logins["dispatcher"]["password"], "totp": "000000"}
        r = await attacker.post("/api/v1/auth/login", json=dispatcher)
        assert r.status_code == 429 and "authenticator code" in r.json()["detail"]
        # ... and an account without an authenticator is refused without checking while it lasts
        outsider = {"username": "outsider", "password": wg.logins["outsider"]["password"]}
        assert (await attacker.post("/api/v1/auth/login", json=outsider)).status_code == 429
    async with from_address(wg, nat) as car:
        good = {"username": "officer", "password": wg.logins["officer"]["password"], "totp": wg.code("officer")}
        assert (await car.post("/api/v1/auth/login", json=good)).status_code == 200  # known address
        fresh = {"username": "dispatcher", "password": wg.logins["dispatcher"]["password"]}
        fresh["totp"] = wg.code("dispatcher")
        assert (await car.post("/api/v1/auth/login", json=fresh)).status_code == 200  # password + fresh code
    ok = [e for e in logins_of(wg) if e.outcome == "success" and e.details.get("limit")]
    assert {e.actor_id for e in ok} == {"officer", "dispatcher"}
    assert any("known" in e.details["limit"] or "before" in e.details["limit"] for e in ok if e.actor_id == "officer")
    assert any("fresh authenticator code" in e.details["limit"] for e in ok if e.actor_id == "dispatcher")
    denied = [e for e in logins_of(wg) if e.outcome == "denied" and e.source == nat]
    assert any("address is limited" in (e.reason or "") for e in denied)
