"""Every route of the app, walked for every role and for an anonymous caller.

The routes are read from the running app's router (``app.routes``), never from a list
kept here; each must declare exactly one guard (gateway/identity/guards.py). What each caller
must get follows from that guard and the matrix (emergency/permissions.py):

* a permission guard (API): allowed → neither 401 nor 403; forbidden → 403; anonymous →
  401 with ``WWW-Authenticate: Bearer``;
* a page guard: allowed → neither 401 nor 403; forbidden → 403 (forbidden.html);
  anonymous → 303 to /signin (pages know only the session cookie, so a records system's
  bearer token is anonymous there too);
* public: neither 401 nor 403 for anyone;
* signed webhook (panic button): 401 for every caller without the button's signature;
* client credentials (/oauth/token): never a token without the client's secret;
* node key (relay): never served without the nodes' relay signature (401, or 404 on a
  node without Redis, which relays nothing: this gateway; tests/cluster/test_camera_leases.py
  ``test_relay_endpoint_refuses_unsigned_and_is_not_documented`` walks it on a Redis node).

"Allowed" is only meaningful where the finer rules of the domain allow too, so before
every call the world is made afresh for it: an active LOCKDOWN at Lincoln High (the
building the building administrator covers, with a live grant for the officer's agency),
or none where the call declares one; a pending access request to decide; real ids for
the path parameters. Each call thus sees the same world, whatever ran before it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from emergency.model import Action, Actor, IncidentType
from emergency.permissions import Permission, may, role_holds
from gateway.cli.demo import ensure_demo_site
from gateway.identity.guards import Kind, route_guards, routes
from gateway.identity.oauth import hash_client_secret
from gateway.identity.signin import AMR_MFA, CSRF_HEADER, CSRF_VALUE, SESSION_COOKIE
from gateway.identity.signing import SIGNATURE_HEADER, sign
from gateway.notifier import seal_secret
from tests.web_helpers import LOCKDOWN, WebGateway, start_web_gateway, stop

BUTTON_SECRET = "walk-panic-secret"
CLIENT_SECRET = "walk-records-secret"
CALLERS = ["admin", "principal", "dispatcher", "officer", "auditor", "records", None]  # None: anonymous
BUILDING = "lincoln-hs"

# A value for each path parameter name the app uses (an unknown name fails the walk).
PARAMS = {
    "camera_id": "hs-front",
    "building_id": BUILDING,
    "button_id": "hs-office",
    "stream": "main",
    "decision": "approve",
    "transition": "all-clear",
    "session_id": "no-such-session",
    "person_id": "outsider",
    "secret": "no-such-guest-link",
    "agency_id": "village-pd",
}
# Let in by the guard, then refused by the rule the handler applies (and audited there):
# a token is renewed only while its holder may see something, and a dispatcher sees no camera.
HANDLER_REFUSES = {("POST", "/api/v1/auth/token/renew", "dispatcher")}
# Calls that need no emergency open at Lincoln High (they open one).
OPENS_ONE = {
    ("POST", "/api/v1/emergencies"),
    ("POST", "/api/v1/access-requests"),
    ("POST", "/api/v1/access-requests/{request_id}/{decision}"),
}
NOW = "2026-11-02T10:00:00Z"
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/emergencies"): LOCKDOWN,
    ("PATCH", "/api/v1/emergencies/{emergency_id}"): {"action": "SECURE"},
    ("POST", "/api/v1/emergencies/{emergency_id}/extend"): {"minutes": 10, "reason": "still searching"},
    ("POST", "/api/v1/access-requests"): {
        "building": BUILDING,
        "call_type": "officer_request",
        "reason": "officer at the door asks for video",
    },
    ("POST", "/api/v1/records/threats"): {
        "source": "tat",
        "case_id": "walk-1",
        "building": BUILDING,
        "classification": "low",
        "status": "open",
        "opened_at": NOW,
    },
    ("POST", "/api/v1/records/restraints"): {
        "source": "sis",
        "episode_id": "walk-1",
        "type": "time_out",
        "building": BUILDING,
        "location": "time-out",
        "start": NOW,
        "end": "2026-11-02T10:05:00Z",
    },
    ("POST", "/api/v1/guest-passes/redeem"): {
        "link": "no-such-guest-link",
        "pin": "000000",
        "name": "Walk Guest",
        "badge": "1",
        "agency": "Walk County",
    },
    ("POST", "/api/v1/records/reports"): {
        "source": "sis",
        "report_id": "walk-1",
        "kind": "attack_on_staff",
        "building": BUILDING,
        "occurred_at": NOW,
    },
}
QUERIES = {"/api/v1/reports/monthly": {"month": "2026-11"}}
# A mount serves files under its path: ask for one that exists.
MOUNT_FILES = {"/static": "/static/app.css"}


def _with_button_and_secret(text: str, sealed: str) -> str:
    text = text.replace(
        'role = "records_client"\n', f'role = "records_client"\nclient_secret = "{hash_client_secret(CLIENT_SECRET)}"\n'
    )
    return (
        text
        + f'''
[[panic_buttons]]
id = "hs-office"
building = "{BUILDING}"
action = "LOCKDOWN"
incident_type = "armed_intruder"
secret = "{sealed}"
'''
    )


@pytest.fixture
async def wg(tmp_path: Path):
    path = ensure_demo_site(tmp_path)
    sealed = seal_secret(path, BUTTON_SECRET)
    gateway, server, task = await start_web_gateway(tmp_path, edit=lambda text: _with_button_and_secret(text, sealed))
    yield gateway
    await stop(server, task)


def actor_of(wg: WebGateway, user: str) -> Actor:
    site = wg.gateway.config.site
    account = site.accounts[user]
    return Actor.from_account(account, mfa=True, delegations=site.delegations(account))


class World:
    """Makes the world a call needs, afresh, through the domain services."""

    def __init__(self, wg: WebGateway) -> None:
        self.gw = wg.gateway
        self.admin = actor_of(wg, "admin")
        self.dispatcher = actor_of(wg, "dispatcher")

    def _end_open(self) -> None:
        for e in self.gw.emergencies.list(open_only=True):
            if e.building == BUILDING:
                if e.state == "pending":
                    self.gw.emergencies.cancel(self.admin, e.id, reason="walk: fresh world")
                else:
                    self.gw.emergencies.all_clear(self.admin, e.id)

    def make(self, method: str, path: str) -> dict[str, str]:
        """Path parameters for a call, with the world it needs made."""
        self._end_open()
        values = dict(PARAMS)
        if (method, path) in OPENS_ONE:
            values["request_id"] = self.gw.requests.submit(
                self.dispatcher, building=BUILDING, call_type="officer_request", reason="walk"
            ).id
            return values
        e = self.gw.emergencies.declare(
            self.admin,
            building=BUILDING,
            action=Action.LOCKDOWN,
            incident_type=IncidentType.ARMED_INTRUDER,
            threat_basis="walk",
            drill=False,
            source=None,
        )
        values["emergency_id"] = self.gw.emergencies.confirm(self.admin, e.id).id
        if "{pass_id}" in path or "{secret}" in path:
            issued = self.gw.guest_passes.issue(self.admin, values["emergency_id"])
            values["pass_id"], values["secret"] = issued.guest_pass.id, issued.link_secret
        return values


def headers_for(wg: WebGateway, user: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, cookies): a person sends a bearer token (MFA) and a fresh session cookie of
    its own (pages know only the cookie); a records system its client token; anonymous nothing."""
    if user is None:
        return {}, {}
    token, token_id = wg.gateway.tokens.issue(user, ttl=600, amr=AMR_MFA)
    headers = {"Authorization": f"Bearer {token}"}
    if not role_holds(wg.gateway.config.site.accounts[user].role, Permission.SIGN_IN):
        return headers, {}  # a records system cannot sign in to the pages
    cookie, _ = wg.signin.sessions.create(user, token, token_id, AMR_MFA, "127.0.0.1")
    return {**headers, CSRF_HEADER: CSRF_VALUE}, {SESSION_COOKIE: cookie}


def expected(kind: Kind, permission: Permission | None, who: Actor | None, bearer_only: bool) -> str:
    if kind is Kind.PUBLIC:
        return "allowed"
    if kind in (Kind.SIGNED_WEBHOOK, Kind.NODE_KEY, Kind.CLIENT_CREDENTIALS):
        return str(kind)
    assert permission is not None
    if who is None or (kind is Kind.PAGE and bearer_only):
        return "signin" if kind is Kind.PAGE else "anonymous"
    return "allowed" if may(who, permission) else "forbidden"


def check(outcome: str, r: httpx.Response) -> bool:
    s = r.status_code
    return {
        "allowed": s not in (401, 403, 500),
        "forbidden": s == 403,
        "anonymous": s == 401 and r.headers.get("www-authenticate", "").startswith("Bearer"),
        "signin": s == 303 and r.headers.get("location", "").startswith("/signin"),
        str(Kind.SIGNED_WEBHOOK): s == 401,
        str(Kind.NODE_KEY): s in (401, 404),
        str(Kind.CLIENT_CREDENTIALS): s in (400, 401) and "access_token" not in r.text,
    }[outcome]


async def test_every_route_declares_exactly_one_guard(wg) -> None:
    walked = routes(wg.app)
    assert len(walked) > 40
    missing = [(m, p, len(route_guards(r))) for m, p, r in walked if len(route_guards(r)) != 1]
    assert missing == [], "routes without exactly one declared guard (gateway/identity/guards.py)"


async def test_a_route_without_a_guard_fails_the_walk(wg) -> None:
    @wg.app.get("/unguarded-for-this-test")
    def unguarded() -> dict[str, str]:
        return {}

    try:
        assert any(p == "/unguarded-for-this-test" and route_guards(r) == [] for _, p, r in routes(wg.app))
    finally:
        wg.app.router.routes[:] = [
            r for r in wg.app.router.routes if getattr(r, "path", "") != "/unguarded-for-this-test"
        ]


@pytest.mark.parametrize("user", CALLERS, ids=[u or "anonymous" for u in CALLERS])
async def test_every_route_answers_each_caller_as_its_guard_says(wg, user) -> None:
    world = World(wg)
    who = actor_of(wg, user) if user else None
    failures, counts = [], {}
    for methods, path, route in routes(wg.app):
        [guard] = route_guards(route)
        for method in methods.split(","):
            method = "GET" if method == "*" else method
            values = world.make(method, path)
            url = MOUNT_FILES.get(path) or re.sub(r"{(\w+)}", lambda m, v=values: v[m.group(1)], path)
            headers, cookies = headers_for(wg, user)
            outcome = expected(guard.kind, guard.permission, who, bearer_only=not cookies)
            if outcome == "allowed" and (method, path, user) in HANDLER_REFUSES:
                outcome = "forbidden"
            async with wg.client(headers=headers, cookies=cookies) as client:
                r = await client.request(method, url, params=QUERIES.get(path), json=BODIES.get((method, path)))
            counts[outcome] = counts.get(outcome, 0) + 1
            if not check(outcome, r):
                failures.append(
                    f"{method} {path} ({guard.describe()}) for {user or 'anonymous'}: expected "
                    f"{outcome}, got {r.status_code} {r.text[:160]}"
                )
    assert failures == []
    if user is None:
        assert counts["allowed"] >= 10 and counts["anonymous"] >= 25 and counts["signin"] >= 6, counts
    elif user == "records":
        assert counts["allowed"] >= 10 + 3 and counts["forbidden"] >= 25, counts  # the public and its record routes
    else:
        assert counts["allowed"] >= 20 and counts["forbidden"] >= 5, counts


async def test_refusals_are_audited_as_permission_denied(wg) -> None:
    headers, _ = headers_for(wg, "officer")
    async with wg.client(headers=headers) as officer:
        r = await officer.get("/api/v1/audit/verify")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    last = wg.gateway.audit.entries(limit=100_000)[-1]
    assert (last.event_type, last.actor_id, last.outcome, last.object) == (
        "permission.denied",
        "officer",
        "denied",
        "http:GET /api/v1/audit/verify",
    )
    assert Permission.READ_AUDIT.value in last.reason


async def test_the_non_role_guards_let_their_callers_in(wg) -> None:
    """The panic button with its signature, and a records system with its client secret."""
    raw = b'{"event_id": "walk-press"}'
    async with wg.client() as anon:
        r = await anon.post(
            "/api/v1/triggers/panic/hs-office",
            content=raw,
            headers={SIGNATURE_HEADER: sign(BUTTON_SECRET, raw, int(time.time())), "Content-Type": "application/json"},
        )
        assert r.status_code == 201 and r.json()["status"] == "declared", r.text
        r = await anon.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("records", CLIENT_SECRET))
        assert r.status_code == 200 and r.json()["access_token"], r.text
        token = r.json()["access_token"]
        r = await anon.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("records", "wrong"))
        assert r.status_code == 401 and "access_token" not in r.text
    async with wg.client(headers={"Authorization": f"Bearer {token}"}) as records:
        body = BODIES[("POST", "/api/v1/records/reports")]
        assert (await records.post("/api/v1/records/reports", json=body)).status_code == 201


# ------------------------------------------------------------------------ the attacker's side

GUARDED = [
    ("GET", "/api/v1/cameras"),
    ("GET", "/api/v1/emergencies"),
    ("POST", "/api/v1/emergencies"),
    ("GET", "/api/v1/audit/events"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/ice-servers"),
    ("GET", "/api/v1/records/reports"),
    ("POST", "/whep/hs-front"),
]


async def test_a_records_client_token_opens_nothing_but_its_record_routes(wg) -> None:
    headers, _ = headers_for(wg, "records")
    async with wg.client(headers=headers) as records:
        for method, path in GUARDED:
            r = await records.request(method, path, json=LOCKDOWN if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code)
            assert "records client" in r.json()["detail"]
        for page in ("/admin", "/view", "/audit"):
            r = await records.get(page)
            assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    assert all(
        e.event_type == "permission.denied" and e.actor_id == "records"
        for e in wg.gateway.audit.entries(limit=100_000)[-len(GUARDED) :]
    )


async def test_a_token_without_mfa_gets_no_video_and_a_cli_token_no_page(wg) -> None:
    """An officer's password-only token passes the route guard but not the view rule
    (mfa_required); a CLI token is a bearer token only: the pages do not take it."""
    World(wg).make("GET", "/api/v1/cameras")  # an active LOCKDOWN with a grant for the officer's agency
    token = wg.gateway.tokens.issue("officer", ttl=600, amr=("pwd",))[0]
    async with wg.client(headers={"Authorization": f"Bearer {token}"}) as no_mfa:
        r = await no_mfa.get("/api/v1/cameras/hs-front/snapshot.jpg")
        assert r.status_code == 403 and r.json()["detail"] == "mfa_required"
        r = await no_mfa.post("/whep/hs-front", content=b"v=0", headers={"Content-Type": "application/sdp"})
        assert r.status_code == 403 and r.json()["detail"] == "mfa_required"
    cli = wg.gateway.tokens.issue("admin", ttl=600)[0]  # what `sightline token` prints
    async with wg.client(headers={"Authorization": f"Bearer {cli}"}) as admin:
        assert (await admin.get("/api/v1/audit/verify")).status_code == 200
        r = await admin.get("/admin")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")


@pytest.mark.parametrize("kind", ["expired", "forged", "garbage", "wrong_scheme"])
async def test_expired_and_forged_tokens_are_refused_everywhere(wg, kind) -> None:
    real = wg.gateway.tokens.issue("admin", ttl=600)[0]
    if kind == "expired":
        token = wg.gateway.tokens.issue("admin", ttl=1)[0]
        time.sleep(2.1)
        auth = f"Bearer {token}"
    elif kind == "forged":
        head, body, _ = real.split(".")
        auth = f"Bearer {head}.{body}.{'A' * 43}"
    elif kind == "garbage":
        auth = "Bearer not-a-token"
    else:
        auth = f"Basic {real}"
    async with wg.client(headers={"Authorization": auth, CSRF_HEADER: CSRF_VALUE}) as attacker:
        for method, path in GUARDED:
            r = await attacker.request(method, path, json=LOCKDOWN if method == "POST" else None)
            assert r.status_code == 401, (kind, method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await attacker.get("/admin")).status_code == 303
    assert wg.gateway.emergencies.list() == []


async def test_a_building_admin_passes_the_guard_but_not_for_another_building(wg) -> None:
    """The guard asks whether the permission is held anywhere; the handler and the domain
    then ask for the emergency's building."""
    admin = actor_of(wg, "admin")
    e = wg.gateway.emergencies.declare(
        admin,
        building="washington-ms",
        action=Action.SECURE,
        incident_type=IncidentType.OTHER,
        threat_basis=None,
        drill=False,
        source=None,
    )
    headers, _ = headers_for(wg, "principal")
    async with wg.client(headers=headers) as principal:
        r = await principal.get(f"/api/v1/emergencies/{e.id}/disclosure")
        assert r.status_code == 403 and "washington-ms" in r.json()["detail"]
        last = wg.gateway.audit.entries(limit=100_000)[-1]
        assert last.event_type == "permission.denied" and last.actor_id == "principal"
        assert (await principal.post(f"/api/v1/emergencies/{e.id}/cancel")).status_code == 403
        assert (await principal.get(f"/api/v1/emergencies/{e.id}")).json()["threat_basis"] is None  # sees the list
    assert wg.gateway.emergencies.get(e.id).state == "pending"
