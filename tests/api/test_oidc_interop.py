"""Sightline's agency sign-in against an OpenID Connect provider we did not write: panva's
certified ``oidc-provider`` from npm (tests/interop/oidc-provider/, tests/node_oidc_provider.py),
driven like a browser would (redirects followed, cookies kept, its login form filled in).

An officer whose provider proved a second factor signs in, is provisioned with the name
and badge the provider states, and gets video over WHEP; one whose provider proved only a
password signs in but WHEP answers 403; a replayed callback, a person the provider does not
know and a code redeemed without the right client secret are refused; a provider that
restarts with a new signing key is followed without restarting the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest

from emergency.audit import AuditEvent
from emergency.people import person_id
from gateway.identity.signin import SESSION_COOKIE
from tests.conftest import free_port
from tests.node_oidc_provider import NodeProvider, NodeUser
from tests.oidc_helpers import AGENCY, callback_path, oidc_gateway
from tests.web_helpers import CSRF, LOCKDOWN, WebGateway
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.api

OFFICER = NodeUser("u-4471", "Officer Jordan Blake", "4471", ["patrol"], ["pwd", "otp"])
PASSWORD_ONLY = NodeUser("u-0912", "Officer Casey Lin", "912", ["patrol"], ["pwd"])


class _Form(HTMLParser):
    action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.action = dict(attrs)["action"] or ""


@pytest.fixture
def gateway_port() -> int:
    return free_port()


@pytest.fixture
def op(gateway_port: int) -> Iterator[NodeProvider]:
    provider = NodeProvider(
        port=free_port(),
        redirect_uri=f"http://127.0.0.1:{gateway_port}/signin/oidc/callback",
        users=[OFFICER, PASSWORD_ONLY],
    )
    with provider.running():
        yield provider


async def sign_in(wg: WebGateway, login: str) -> tuple[httpx.AsyncClient, list[httpx.Response]]:
    """Press the agency's button, type ``login`` on the provider's page; the client and the
    responses of the way back (the last one the gateway's answer to the callback)."""
    client = wg.client(headers=CSRF, follow_redirects=True)
    page = await client.get(f"/signin/oidc/{AGENCY}", params={"next": "/view"})
    assert page.status_code == 200 and str(page.url).startswith(wg.gateway.config.oidc[AGENCY].issuer), page.url
    form = _Form()
    form.feed(page.text)
    back = await client.post(urljoin(str(page.url), form.action), data={"login": login})
    return client, [*back.history, back]


def entries(wg: WebGateway, event: AuditEvent):
    return [e for e in wg.gateway.audit.entries(limit=100_000) if e.event_type == event]


async def test_officer_with_a_second_factor_signs_in_and_watches_video(tmp_path, op, gateway_port) -> None:
    async with oidc_gateway(tmp_path, op, port=gateway_port) as wg:
        client, way_back = await sign_in(wg, OFFICER.sub)
        async with aclosing(client), wg.bearer("admin") as admin:
            answer = way_back[-1]
            assert answer.status_code == 200 and 'content="0;url=/view"' in answer.text, answer.text
            callback = next(r for r in way_back if r.url.path == "/signin/oidc/callback")
            session = (await client.get("/api/v1/auth/session")).json()
            officer = person_id(AGENCY, OFFICER.sub)
            assert (session["user"], session["name"], session["role"]) == (officer, OFFICER.name, "officer")
            assert session["mfa"] is True and session["amr"] == ["oidc", "mfa"]

            person = wg.gateway.store.get_person(officer)
            assert person is not None and (person.name, person.badge) == (OFFICER.name, OFFICER.badge_number)
            assert person.subject == OFFICER.sub
            [login] = [e for e in entries(wg, AuditEvent.AUTH_LOGIN) if e.actor_id == officer]
            assert login.details["issuer"] == op.issuer and login.details["provider_amr"] == ["pwd", "otp"]

            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
            viewer = WhepViewer(wg.base_url, "hs-front", "", cookies={SESSION_COOKIE: client.cookies[SESSION_COOKIE]})
            try:
                answer = await viewer.start()
                assert answer.status_code == 201, answer.text
                await viewer.wait_frames(3, timeout=10)
            finally:
                await viewer.close()

        # The callback again (code and state, with this browser's cookies): refused.
        async with wg.client() as thief:
            again = await thief.get(callback_path(str(callback.url)))
            assert again.status_code == 400 and SESSION_COOKIE not in thief.cookies
        assert entries(wg, AuditEvent.OIDC_REFUSED)


async def test_without_a_second_factor_the_officer_signs_in_but_whep_refuses(tmp_path, op, gateway_port) -> None:
    async with oidc_gateway(tmp_path, op, port=gateway_port) as wg:
        client, way_back = await sign_in(wg, PASSWORD_ONLY.sub)
        async with aclosing(client), wg.bearer("admin") as admin:
            assert way_back[-1].status_code == 200
            assert "did not prove a second factor" in way_back[-1].text
            session = (await client.get("/api/v1/auth/session")).json()
            assert session["mfa"] is False and session["amr"] == ["oidc"]
            person = wg.gateway.store.get_person(person_id(AGENCY, PASSWORD_ONLY.sub))
            assert person is not None and person.badge == PASSWORD_ONLY.badge_number

            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
            viewer = WhepViewer(wg.base_url, "hs-front", "", cookies={SESSION_COOKIE: client.cookies[SESSION_COOKIE]})
            try:
                refused = await viewer.start()
            finally:
                await viewer.close()
            assert refused.status_code == 403 and refused.json()["detail"] == "mfa_required", refused.text
        assert not entries(wg, AuditEvent.VIEW_STARTED)


async def test_a_provider_restarted_with_a_new_key_is_followed(tmp_path, op, gateway_port) -> None:
    async with oidc_gateway(tmp_path, op, port=gateway_port) as wg:
        client, way_back = await sign_in(wg, OFFICER.sub)
        await client.aclose()
        assert way_back[-1].status_code == 200
        [old] = op.jwks()["keys"]
        op.restart()
        [new] = op.jwks()["keys"]
        assert new["kid"] != old["kid"]
        client, way_back = await sign_in(wg, OFFICER.sub)
        async with aclosing(client):
            assert way_back[-1].status_code == 200, way_back[-1].text
            session = (await client.get("/api/v1/auth/session")).json()
            assert session["user"] == person_id(AGENCY, OFFICER.sub)
        assert not entries(wg, AuditEvent.OIDC_REFUSED)


async def test_a_person_the_provider_does_not_know_is_refused(tmp_path, op, gateway_port) -> None:
    async with oidc_gateway(tmp_path, op, port=gateway_port) as wg:
        client, way_back = await sign_in(wg, "nobody")
        async with aclosing(client):
            assert way_back[-1].status_code == 401 and "did not let you in" in way_back[-1].text
            assert SESSION_COOKIE not in client.cookies
        assert "the provider answered 'access_denied'" in entries(wg, AuditEvent.OIDC_REFUSED)[-1].reason


async def test_a_code_is_not_redeemed_without_the_client_secret(tmp_path, op, gateway_port) -> None:
    op.client_secret = "not-the-secret"  # what the gateway's site file seals; the provider knows the real one
    async with oidc_gateway(tmp_path, op, port=gateway_port) as wg:
        client, way_back = await sign_in(wg, OFFICER.sub)
        async with aclosing(client):
            assert way_back[-1].status_code == 400 and SESSION_COOKIE not in client.cookies
        reason = entries(wg, AuditEvent.OIDC_REFUSED)[-1].reason
        assert "refused the authorization code: invalid_client" in reason, reason
        assert wg.gateway.store.get_person(person_id(AGENCY, OFFICER.sub)) is None
