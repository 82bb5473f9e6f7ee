"""Signing in through an agency's OpenID Connect provider, against a real provider
(tests/oidc_provider.py: authlib's AuthorizationServer on its own HTTP server and keys).

From the officer's side: the flow works, provisions ``{agency}:{sub}`` and keeps it up to
date. From the attacker's side, each of these is refused, audited as ``auth.oidc_refused``
and answered with a page that says what to do: a wrong issuer, a wrong audience, an
expired ID token, ``alg: none``, a token signed by a key the provider does not publish, a
replayed authorization code (and a replayed callback), a wrong ``state``, a code redeemed
with the wrong PKCE verifier. An ID token without MFA signs in but cannot open video.
"""

from __future__ import annotations

import dataclasses
from contextlib import aclosing

import httpx
import pytest

from emergency.audit import AuditEvent
from emergency.people import person_id
from gateway.identity.oidc import FLOW_COOKIE
from gateway.identity.signin import SESSION_COOKIE
from tests.oidc_helpers import (
    AGENCY,
    OFFICER,
    authorize,
    callback_path,
    oidc_gateway,
    oidc_sign_in,
    query,
    start_flow,
)
from tests.oidc_provider import Provider, User
from tests.web_helpers import lockdown_and_offer

pytestmark = pytest.mark.api

OFFICER_ID = person_id(AGENCY, OFFICER.sub)


def entries(wg, event: AuditEvent):
    return [e for e in wg.gateway.audit.entries(limit=100_000) if e.event_type == event]


def refusals(wg):
    return entries(wg, AuditEvent.OIDC_REFUSED)


@pytest.fixture
def provider():
    with Provider() as op:
        op.add_user(dataclasses.replace(OFFICER))
        yield op


async def test_officer_signs_in_is_provisioned_and_kept_up_to_date(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        signin = await wg.client().get("/signin")
        assert 'href="/signin/oidc/village-pd?next=%2F"' in signin.text
        assert "Sign in with Village Police Department" in signin.text

        client, answer = await oidc_sign_in(wg)
        async with aclosing(client):
            assert answer.status_code == 200, answer.text
            assert 'content="0;url=/view"' in answer.text
            session = (await client.get("/api/v1/auth/session")).json()
            assert session["user"] == OFFICER_ID
            assert session["name"] == "Officer Jordan Blake"
            assert (session["role"], session["agency"], session["mfa"]) == ("officer", AGENCY, True)
            assert session["amr"] == ["oidc", "mfa"]
            view = await client.get("/view")
            assert view.status_code == 200 and "Officer Jordan Blake" in view.text
            assert 'id="mfa-notice"' not in view.text

        # PKCE: the token request carried the verifier (and the client secret, not in the body)
        assert provider.token_requests[-1]["code_verifier"]
        assert "client_secret" not in provider.token_requests[-1]
        person = wg.gateway.store.get_person(OFFICER_ID)
        assert person is not None and person.badge == "4471" and person.subject == OFFICER.sub
        added = entries(wg, AuditEvent.PERSON_PROVISIONED)
        assert [e.actor_id for e in added] == [OFFICER_ID]
        login = entries(wg, AuditEvent.AUTH_LOGIN)[-1]
        assert login.actor_id == OFFICER_ID and login.outcome == "success"
        assert login.details["method"] == "oidc" and login.details["badge"] == "4471"
        assert login.details["issuer"] == provider.issuer

        # The provider says the officer moved to dispatch and has a new badge: next sign-in follows.
        user = provider.users[OFFICER.sub]
        user.groups, user.badge, user.name = ["dispatch"], "5100", "Dispatcher Jordan Blake"
        client, answer = await oidc_sign_in(wg, "/dispatch")
        async with aclosing(client):
            assert answer.status_code == 200, answer.text
            session = (await client.get("/api/v1/auth/session")).json()
            assert (session["role"], session["name"]) == ("dispatcher", "Dispatcher Jordan Blake")
        person2 = wg.gateway.store.get_person(OFFICER_ID)
        assert person2 is not None and person2.badge == "5100" and person2.first_seen == person.first_seen
        updated = entries(wg, AuditEvent.PERSON_UPDATED)
        assert len(updated) == 1 and updated[0].details["fields"] == "name, badge, role"
        assert len(entries(wg, AuditEvent.PERSON_PROVISIONED)) == 1
        assert wg.gateway.tokens.directory.name(OFFICER_ID) == "Dispatcher Jordan Blake"
        assert refusals(wg) == []


BAD_TOKENS = {
    "wrong issuer": ({"issuer": "https://evil.example"}, "was issued by 'https://evil.example'"),
    "wrong audience": ({"audience": "someone-else"}, "is meant for 'someone-else'"),
    "expired": ({"lifetime": -120}, "has expired"),
    "alg none": ({"alg_none": True}, "uses algorithm 'none'"),
    "another key": ({"foreign_key": True}, "has a bad signature"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_id_tokens_are_refused_and_audited(tmp_path, provider, case) -> None:
    knobs, why = BAD_TOKENS[case]
    provider.misbehave = dataclasses.replace(provider.misbehave, **knobs)
    async with oidc_gateway(tmp_path, provider) as wg:
        client, answer = await oidc_sign_in(wg)
        async with aclosing(client):
            assert answer.status_code == 400, answer.text
            assert "Sign-in refused" in answer.text and "press your agency" in answer.text
            assert SESSION_COOKIE not in client.cookies
            assert (await client.get("/api/v1/auth/session")).status_code == 401
        [refused] = refusals(wg)
        assert why in refused.reason, refused.reason
        assert refused.outcome == "denied" and refused.details["agency"] == AGENCY
        assert wg.gateway.store.get_person(OFFICER_ID) is None
        assert not [e for e in entries(wg, AuditEvent.AUTH_LOGIN) if e.outcome == "success"]


async def test_a_replayed_code_or_callback_is_refused(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        victim = wg.client()
        callback = await authorize(await start_flow(victim))
        flow_cookie = victim.cookies.get(FLOW_COOKIE)
        assert (await victim.get(callback_path(callback))).status_code == 200

        # The whole callback again, with the sealed flow cookie copied too: state is single use.
        thief = wg.client(cookies={FLOW_COOKIE: flow_cookie})
        again = await thief.get(callback_path(callback))
        assert again.status_code == 400 and SESSION_COOKIE not in thief.cookies
        await thief.aclose()
        # The stolen code in a sign-in of the thief's own: the provider has spent it.
        async with wg.client() as thief:
            fresh = query(await authorize(await start_flow(thief)))
            code = query(callback)["code"]
            spent = await thief.get("/signin/oidc/callback", params={"state": fresh["state"], "code": code})
            assert spent.status_code == 400 and SESSION_COOKIE not in thief.cookies
        await victim.aclose()
        reasons = [e.reason for e in refusals(wg)]
        assert "already used (a replay)" in reasons[0], reasons
        assert "refused the authorization code: invalid_grant" in reasons[1], reasons
        assert len(reasons) == 2


async def test_a_wrong_or_missing_state_is_refused(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        async with wg.client() as client:
            got = query(await authorize(await start_flow(client)))
            wrong = await client.get("/signin/oidc/callback", params={"state": "forged", "code": got["code"]})
            assert wrong.status_code == 400 and SESSION_COOKIE not in client.cookies
        # A callback in a browser that started no sign-in (login CSRF: the attacker's code).
        async with wg.client() as other:
            got = query(await authorize(await start_flow(other)))
        async with wg.client() as victim:
            csrf = await victim.get("/signin/oidc/callback", params=got)
            assert csrf.status_code == 400 and "not started from this browser" in csrf.text
            assert SESSION_COOKIE not in victim.cookies
        reasons = [e.reason for e in refusals(wg)]
        assert "state does not match" in reasons[0]
        assert "no sign-in was started in this browser" in reasons[1]


async def test_pkce_is_required_and_checked(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        # An attacker's code, got with the attacker's own PKCE challenge, injected into the
        # victim's sign-in: the victim's verifier does not match, the provider refuses.
        async with wg.client() as attacker:
            url = await start_flow(attacker)
        params = query(url)
        params["code_challenge"] = "A" * 43  # a challenge whose verifier we (the gateway) do not hold
        async with httpx.AsyncClient(timeout=15) as op:
            injected = query((await op.get(url.split("?")[0], params=params)).headers["location"])["code"]
        async with wg.client() as victim:
            state = query(await start_flow(victim))["state"]
            r = await victim.get("/signin/oidc/callback", params={"state": state, "code": injected})
            assert r.status_code == 400 and SESSION_COOKIE not in victim.cookies
        [refused] = refusals(wg)
        assert "invalid_grant" in refused.reason and "Code challenge failed" in refused.reason

    # The provider itself: no code without a challenge, no token without the verifier.
    async with httpx.AsyncClient(timeout=15) as op:
        plain = {k: v for k, v in params.items() if not k.startswith("code_challenge")}
        r = await op.get(f"{provider.issuer}/authorize", params=plain)
        assert "error=invalid_request" in r.headers["location"]
        code = query((await op.get(f"{provider.issuer}/authorize", params=params)).headers["location"])["code"]
        r = await op.post(
            f"{provider.issuer}/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"]},
            auth=(provider.client_id, provider.client_secret),
        )
        assert r.status_code == 400 and "code_verifier" in r.json()["error_description"]


async def test_without_mfa_the_officer_signs_in_but_video_is_refused(tmp_path, provider) -> None:
    provider.users[OFFICER.sub].amr = ["pwd"]
    async with oidc_gateway(tmp_path, provider) as wg:
        client, answer = await oidc_sign_in(wg)
        admin = await wg.sign_in("admin")
        async with aclosing(client), admin:
            assert answer.status_code == 200
            assert "did not prove a second factor" in answer.text and "Ask Village Police Department IT" in answer.text
            session = (await client.get("/api/v1/auth/session")).json()
            assert session["mfa"] is False and session["amr"] == ["oidc"]
            view = await client.get("/view")
            assert "did not prove a second factor, and video needs one" in view.text
            assert "Village Police Department IT" in view.text
            eid, viewer = await lockdown_and_offer(admin, wg.base_url)
            r = await client.post(
                "/whep/hs-front", content=viewer.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            )
            await viewer.close()
            assert r.status_code == 403, r.text
            assert r.json()["detail"] == "mfa_required"
        login = [e for e in entries(wg, AuditEvent.AUTH_LOGIN) if e.actor_id == OFFICER_ID][-1]
        assert "without a proven second factor" in login.reason and login.details["provider_amr"] == ["pwd"]


async def test_mfa_by_acr_counts(tmp_path, provider) -> None:
    provider.users[OFFICER.sub].amr = []
    provider.users[OFFICER.sub].acr = "phr"

    def with_acr(text: str) -> str:
        return text.replace('mfa_amr = ["mfa", "hwk", "otp"]', 'mfa_amr = [], mfa_acr = ["phr", "phrh"]')

    async with oidc_gateway(tmp_path, provider, edit=with_acr) as wg:
        client, answer = await oidc_sign_in(wg)
        async with aclosing(client):
            assert answer.status_code == 200
            assert (await client.get("/api/v1/auth/session")).json()["mfa"] is True


async def test_key_rotation_is_followed_without_a_restart(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        client, answer = await oidc_sign_in(wg)
        await client.aclose()
        assert answer.status_code == 200
        fetches = provider.jwks_fetches
        old = provider.key.kid
        provider.rotate()
        assert provider.key.kid != old
        client, answer = await oidc_sign_in(wg)
        async with aclosing(client):
            assert answer.status_code == 200, answer.text
            assert (await client.get("/api/v1/auth/session")).json()["user"] == OFFICER_ID
        assert provider.jwks_fetches == fetches + 1  # fetched again once, for the new key id
        # A made-up key id right after does not make the gateway fetch again (no request flood).
        provider.misbehave.foreign_key = True
        provider.key = provider.key.__class__.generate_key(2048, parameters={"kid": "made-up"})
        client, answer = await oidc_sign_in(wg)
        await client.aclose()
        assert answer.status_code == 400
        assert provider.jwks_fetches == fetches + 1
        assert "does not publish (kid 'made-up')" in refusals(wg)[-1].reason


async def test_refused_callbacks_are_limited_per_source(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        async with wg.client() as client:
            codes = [(await client.get("/signin/oidc/callback?state=x&code=y")).status_code for _ in range(21)]
            assert codes[:20] == [400] * 20 and codes[20] == 429
            last = await client.get("/signin/oidc/callback?state=x&code=y")
            assert last.status_code == 429 and int(last.headers["retry-after"]) > 0
            assert "Wait" in last.text
        assert len(refusals(wg)) == 21  # 20 checked, then one for the minute's unchecked ones


async def test_provider_refusing_the_person_and_unknown_providers(tmp_path, provider) -> None:
    async with oidc_gateway(tmp_path, provider) as wg:
        async with wg.client() as client:
            r = await client.get("/signin/oidc/no-such-agency")
            assert r.status_code == 404 and "no sign-in service by that name" in r.text
            url = await start_flow(client)
            back = query(url)
            r = await client.get("/signin/oidc/callback", params={"state": back["state"], "error": "access_denied"})
            assert r.status_code == 401 and "did not let you in" in r.text
        assert "the provider answered 'access_denied'" in refusals(wg)[-1].reason


async def test_district_staff_sign_in_with_their_mapped_role(tmp_path) -> None:
    with Provider(client_id="district-staff") as op:
        op.add_user(User(sub="p-77", name="Sam Ortiz", groups=["lincoln-office"]))
        op.add_user(User(sub="x-1", name="Pat Nobody", groups=["cafeteria"]))

        def district(text: str) -> str:
            start = text.index("    oidc = { ") if "    oidc = { " in text else text.index("oidc = { ")
            line = text[start : text.index("\n", start)]
            table = line.replace(
                '{ "dispatch" = "dispatcher", "patrol" = "officer" }',
                '{ "safety" = "district_admin", "lincoln-office" = { role = "building_admin", '
                'buildings = ["lincoln-hs"] } }',
            ).replace(', badge_claim = "badge_number"', "")
            text = text.replace(line + "\n", "", 1)
            return text.replace(
                'name = "Lincoln School District 42"\n', f'name = "Lincoln School District 42"\n{table}\n'
            )

        async with oidc_gateway(tmp_path, op, edit=district) as wg:
            assert list(wg.gateway.config.oidc) == ["lincoln-d42"]
            async with wg.client() as client:
                r = await client.get("/signin/oidc/lincoln-d42", params={"next": "/admin"})
                back = await authorize(r.headers["location"])
                r = await client.get(callback_path(back))
                assert r.status_code == 200, r.text
                session = (await client.get("/api/v1/auth/session")).json()
                assert (session["user"], session["role"], session["agency"]) == (
                    "lincoln-d42:p-77",
                    "building_admin",
                    None,
                )
                assert wg.gateway.tokens.directory.get("lincoln-d42:p-77").buildings == ("lincoln-hs",)
                assert (await client.get("/admin")).status_code == 200
            op.user = op.users["x-1"]
            async with wg.client() as client:
                r = await client.get("/signin/oidc/lincoln-d42")
                r = await client.get(callback_path(await authorize(r.headers["location"])))
                assert r.status_code == 403 and "none of the groups" in r.text
            assert "none of the groups mapped to a role" in refusals(wg)[-1].reason
            assert wg.gateway.store.get_person("lincoln-d42:x-1") is None
