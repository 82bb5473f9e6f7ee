"""The records API over real HTTP: OAuth2 client credentials (authlib client), scopes,
idempotent upserts, privacy holds that block WHEP during a lockdown, need-to-know reads,
and the audit trail of all of it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from emergency.sample import sample_site_data
from emergency.service import _notice
from gateway.cli.demo import GATEWAY
from gateway.cli.toml_writer import to_toml
from gateway.config import ConfigError, load_config
from gateway.identity.oauth import hash_client_secret
from tests.whep_client import WhepViewer

SECRET = "records-test-secret-0123456789"
TAT_SECRET = "tat-only-secret-0123456789"
TAT_HASH = hash_client_secret(TAT_SECRET)
ALL_SCOPES = "records:threats records:restraints records:reports"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # holds are judged on the real clock
NOW = START.isoformat()
LATER = (START + timedelta(seconds=30)).isoformat()  # the episode ended a moment ago
EARLIER = (START - timedelta(minutes=10)).isoformat()

IMMINENT = {
    "source": "tat",
    "case_id": "case-7",
    "building": "lincoln-hs",
    "classification": "imminent",
    "status": "open",
    "opened_at": NOW,
    "basis": "Student posted a specific threat to bring a gun today",
}


def write_site(tmp_path: Path) -> Path:
    data = sample_site_data()
    for account in data["accounts"]:
        if account["id"] == "records":
            account["client_secret"] = hash_client_secret(SECRET)
    data["accounts"].append(
        {
            "id": "tat-only",
            "name": "Threat assessment system",
            "role": "records_client",
            "scopes": ["records:threats"],
            "client_secret": TAT_HASH,
        }
    )
    path = tmp_path / "site.toml"
    path.write_text(to_toml({"gateway": GATEWAY, **data}))
    return path


@pytest.fixture
async def gw(tmp_path, run_gateway):
    return await run_gateway(write_site(tmp_path))


def oauth_client(gw, client_id="records", secret=SECRET, **kw) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(client_id, secret, base_url=gw.base_url, timeout=15, **kw)


@asynccontextmanager
async def records_client(gw, client_id="records", secret=SECRET, scope=None) -> AsyncIterator[AsyncOAuth2Client]:
    """A records system as it would be: authlib's OAuth2 client fetching a token, then calling."""
    async with oauth_client(gw, client_id, secret, scope=scope) as client:
        await client.fetch_token(f"{gw.base_url}/oauth/token", grant_type="client_credentials")
        yield client


def audit_events(gw, prefix: str) -> list:
    return [e for e in gw.gateway.audit.entries(limit=100_000) if e.event_type.startswith(prefix)]


# OAuth2


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_client_credentials_token_carries_scopes_and_is_audited(gw, method):
    async with oauth_client(gw, token_endpoint_auth_method=method) as client:
        token = await client.fetch_token(f"{gw.base_url}/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == ALL_SCOPES and token["expires_in"] == 3600
        ident = gw.gateway.tokens.authenticate(token["access_token"])
        assert ident.actor.id == "records" and ident.scopes == set(ALL_SCOPES.split())
    async with oauth_client(gw, scope="records:threats", token_endpoint_auth_method=method) as client:
        token = await client.fetch_token(f"{gw.base_url}/oauth/token", grant_type="client_credentials")
        assert token["scope"] == "records:threats"
    issued = [e for e in audit_events(gw, "auth.token_issued") if e.outcome == "success"]
    assert len(issued) == 2 and issued[-1].details["scope"] == "records:threats"
    assert issued[-1].details["amr"] == ["client_credentials"] and issued[-1].actor_id == "records"


async def test_bad_secret_unknown_client_and_foreign_scope_are_refused_and_audited(gw):
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        for auth in (("records", "wrong"), ("nobody", SECRET), ("officer", "x")):
            r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
            assert r.status_code == 401, r.text
            body = r.json()
            assert body["error"] == "invalid_client" and body["detail"] == body["error_description"]
            assert r.headers["www-authenticate"].startswith("Basic")
        r = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "records:reports"},
            auth=("tat-only", TAT_SECRET),
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
        r = await http.post("/oauth/token", data={"grant_type": "password"}, auth=("records", SECRET))
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = await http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=("records", SECRET))
        assert r.status_code == 400 and set(r.json()) == {"error", "error_description", "detail"}
    # one source: the first refusal of the minute in full, the rest counted (gateway/identity/failures.py)
    gw.app.state.auth_failures.flush(everything=True)
    failures = [e for e in audit_events(gw, "auth.token_issued") if e.outcome == "failure"]
    summaries = [e for e in audit_events(gw, "auth.failures") if e.details["kind"] == "client credentials"]
    assert len(failures) + sum(e.details["count"] for e in summaries) == 7
    named = {e.actor_id for e in failures} | {r.split()[1].rstrip(":") for e in summaries for r in e.details["reasons"]}
    assert named >= {"records", "nobody", "officer", "tat-only"}


def test_client_secret_must_be_hashed_or_sealed_and_on_a_records_client(tmp_path):
    text = write_site(tmp_path).read_text()
    stored = TAT_HASH
    path = tmp_path / "site.toml"
    for edit, complaint in (
        (lambda t: t.replace(stored, TAT_SECRET), "plain text"),
        (
            lambda t: t.replace('role = "auditor"\n', f'role = "auditor"\nclient_secret = "{stored}"\n'),
            "not a records_client",
        ),
    ):
        changed = edit(text)
        assert changed != text
        path.write_text(changed)
        with pytest.raises(ConfigError, match=complaint):
            load_config(path)


# threats


async def test_imminent_threat_posted_three_times_makes_exactly_one_proposal(gw):
    async with records_client(gw) as client, gw.client("admin") as admin:
        codes = []
        for _ in range(3):
            r = await client.post("/api/v1/records/threats", json=IMMINENT)
            codes.append(r.status_code)
            body = r.json()
            assert body["effect"] == "proposal", body
        assert codes == [201, 200, 200]
        assert body["result"] == "unchanged"
        emergencies = (await admin.get("/api/v1/emergencies")).json()
        assert len(emergencies) == 1 and emergencies[0]["id"] == body["emergency"]
        proposal = emergencies[0]
        assert proposal["state"] == "pending" and proposal["building"] == "lincoln-hs"
        assert proposal["threat_basis"] == IMMINENT["basis"]
        confirmed = await admin.post(f"/api/v1/emergencies/{proposal['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text
        # what outbound webhooks carry for it: the origin and the disclosure record
        notice = _notice(gw.gateway.emergencies.get(proposal["id"]))
        assert notice["declared_by"] == "threat:tat/case-7"
        assert notice["disclosure"] == {"id": proposal["id"], "url": f"/api/v1/emergencies/{proposal['id']}/disclosure"}
    effects = audit_events(gw, "record.effect")
    assert len(effects) == 1 and effects[0].details["emergency"] == body["emergency"]
    assert len(audit_events(gw, "record.threat.received")) == 1


async def test_low_threat_proposes_nothing_and_bad_bodies_are_refused_and_audited(gw):
    async with records_client(gw) as client:
        low = {**IMMINENT, "case_id": "case-8", "classification": "low"}
        r = await client.post("/api/v1/records/threats", json=low)
        assert r.status_code == 201 and r.json()["effect"] == "none" and r.json()["emergency"] is None
        bad = [
            {**IMMINENT, "classification": "severe"},
            {**IMMINENT, "opened_at": START.replace(tzinfo=None).isoformat()},  # no timezone
            {**IMMINENT, "building": "atlantis"},
            {**IMMINENT, "student_name": "Jordan"},
            {k: v for k, v in IMMINENT.items() if k != "case_id"},
        ]
        for body in bad:
            r = await client.post("/api/v1/records/threats", json=body)
            assert r.status_code == 422, r.text
            assert set(r.json()) == {"error", "detail"}
        r = await client.post(
            "/api/v1/records/threats", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and set(r.json()) == {"error", "detail"}
    assert len(audit_events(gw, "record.threat.refused")) == 6
    assert [link.external_id for link in gw.gateway.records.links()] == ["case-8"]
    assert gw.gateway.emergencies.list() == []


# restraints and the privacy hold


async def test_restraint_in_a_hallway_blocks_that_camera_during_lockdown_until_it_ends(gw):
    camera = "hs-hall-a"  # zone "hallways": LOCKDOWN shares it
    episode = {
        "source": "sis",
        "episode_id": "ep-1",
        "type": "physical_restraint",
        "building": "lincoln-hs",
        "location": "hallways",
        "start": NOW,
    }
    async with records_client(gw) as client, gw.client("admin") as admin, gw.client("officer") as officer:
        created = await admin.post(
            "/api/v1/emergencies",
            json={"building": "lincoln-hs", "action": "LOCKDOWN", "incident_type": "armed_intruder"},
        )
        assert (await admin.post(f"/api/v1/emergencies/{created.json()['id']}/confirm")).json()["state"] == "active"
        watching = WhepViewer(gw.base_url, camera, gw.token("officer"))
        assert (await watching.start()).status_code == 201

        r = await client.post("/api/v1/records/restraints", json=episode)
        assert r.status_code == 201, r.text
        assert r.json()["effect"] == "privacy_hold" and r.json()["cameras"] == [camera]
        for _ in range(50):  # the live session on that camera is closed at once
            if not any(s.camera_id == camera for s in gw.gateway.sessions.all()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the session on a held camera stayed open")
        await watching.close()

        blocked = WhepViewer(gw.base_url, camera, gw.token("officer"))
        assert (await blocked.start()).status_code == 403
        await blocked.close()
        assert camera not in {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        other = WhepViewer(gw.base_url, "hs-front", gw.token("officer"))  # not covered: still shared
        assert (await other.start()).status_code == 201
        await other.close()

        ended = await client.post("/api/v1/records/restraints", json={**episode, "end": LATER})
        assert ended.status_code == 200 and ended.json()["effect"] == "privacy_hold_ended"
        assert ended.json()["result"] == "updated"
        again = WhepViewer(gw.base_url, camera, gw.token("officer"))
        assert (await again.start()).status_code == 201
        await again.close()

    stored = gw.gateway.records.links()[0]
    assert set(stored.fields) == {"type", "location", "start", "end", "open"}
    started, ended_ = audit_events(gw, "privacy_hold.started"), audit_events(gw, "privacy_hold.ended")
    assert started and ended_ and started[0].details["emergency"] == created.json()["id"]


async def test_restraint_location_must_be_a_zone_or_coverage_tag(gw):
    async with records_client(gw) as client:
        r = await client.post(
            "/api/v1/records/restraints",
            json={
                "source": "sis",
                "episode_id": "ep-2",
                "type": "time_out",
                "building": "lincoln-hs",
                "location": "cafeteria-roof",
                "start": NOW,
            },
        )
        assert r.status_code == 422 and "location" in r.json()["detail"]
        r = await client.post(
            "/api/v1/records/restraints",
            json={
                "source": "sis",
                "episode_id": "ep-3",
                "type": "time_out",
                "building": "lincoln-hs",
                "location": "time-out",
                "start": NOW,
                "end": EARLIER,
            },
        )
        assert r.status_code == 422 and "end" in r.json()["detail"]
    assert gw.gateway.records.links() == []


# reports


async def test_firearm_report_proposes_and_detention_notices_are_need_to_know(gw):
    async with records_client(gw) as client:
        firearm = {
            "source": "sis",
            "report_id": "r-1",
            "kind": "firearm_observed",
            "building": "lincoln-hs",
            "occurred_at": NOW,
        }
        r = await client.post("/api/v1/records/reports", json=firearm)
        assert r.status_code == 201 and r.json()["effect"] == "proposal"
        assert "reporter" not in r.text
        r = await client.post("/api/v1/records/reports", json={**firearm, "report_id": "r-2", "reporter": "Ms. Staff"})
        assert r.status_code == 422  # the reporter's identity can never be stored
        detention = {
            "source": "village-rms",
            "report_id": "d-1",
            "kind": "student_detention",
            "building": "lincoln-hs",
            "occurred_at": NOW,
        }
        assert (await client.post("/api/v1/records/reports", json=detention)).status_code == 201
        ms = {**detention, "report_id": "d-2", "building": "washington-ms"}
        assert (await client.post("/api/v1/records/reports", json=ms)).status_code == 201
        assert (await client.get("/api/v1/records/reports")).status_code == 403  # clients post, not read

    async with gw.client("admin") as admin, gw.client("principal") as principal:
        everything = (await admin.get("/api/v1/records/reports")).json()
        assert {r["report_id"] for r in everything} == {"r-1", "d-1", "d-2"}
        mine = (await principal.get("/api/v1/records/reports", params={"kind": "student_detention"})).json()
        assert [r["report_id"] for r in mine] == ["d-1"]  # only the principal's building
    for user in ("officer", "auditor", "dispatcher"):
        async with gw.client(user) as who:
            r = await who.get("/api/v1/records/reports")
            assert r.status_code == 403 and set(r.json()) == {"error", "detail"}
    emergencies = gw.gateway.emergencies.list()
    assert len(emergencies) == 1 and emergencies[0].declared_by == "report:sis/r-1"


# who may call


@pytest.mark.parametrize("user", ["officer", "auditor", "admin"])
async def test_people_cannot_post_records(gw, user):
    async with gw.client(user) as who:
        for path, body in (
            ("threats", IMMINENT),
            (
                "restraints",
                {
                    "source": "sis",
                    "episode_id": "e",
                    "type": "time_out",
                    "building": "lincoln-hs",
                    "location": "hallways",
                    "start": NOW,
                },
            ),
            (
                "reports",
                {
                    "source": "sis",
                    "report_id": "r",
                    "kind": "forcible_felony",
                    "building": "lincoln-hs",
                    "occurred_at": NOW,
                },
            ),
        ):
            r = await who.post(f"/api/v1/records/{path}", json=body)
            assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    assert gw.gateway.records.links() == []
    assert len([e for e in audit_events(gw, "permission.denied") if e.actor_id == user]) == 3


async def test_threats_client_cannot_post_reports_nor_use_other_endpoints(gw):
    async with records_client(gw, "tat-only", TAT_SECRET) as client:
        assert (await client.post("/api/v1/records/threats", json=IMMINENT)).status_code == 201
        r = await client.post(
            "/api/v1/records/reports",
            json={
                "source": "sis",
                "report_id": "r-9",
                "kind": "forcible_felony",
                "building": "lincoln-hs",
                "occurred_at": NOW,
            },
        )
        assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
        assert "records:reports" in r.json()["detail"]
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        for path in ("/api/v1/emergencies", "/api/v1/cameras", "/api/v1/audit/events"):
            assert (await client.get(path)).status_code == 403, path
    # the full client, narrowed to one scope at /oauth/token, is held to it too
    async with records_client(gw, scope="records:restraints") as narrowed:
        r = await narrowed.post("/api/v1/records/threats", json={**IMMINENT, "case_id": "case-9"})
        assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert {link.external_id for link in gw.gateway.records.links()} == {"case-7"}


def test_cli_token_for_the_records_client_has_all_scopes_and_is_audited(tmp_path):
    path = write_site(tmp_path)

    def sightline(*args):
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60)

    out = sightline("token", "--config", str(path), "--user", "records")
    assert out.returncode == 0, out.stderr
    from gateway.runtime import open_domain, token_authority

    config = load_config(path)
    ident = token_authority(config).authenticate(out.stdout.strip())
    assert ident.actor.id == "records" and ident.scopes == set(ALL_SCOPES.split())
    narrow = sightline("token", "--config", str(path), "--user", "records", "--scope", "records:reports")
    assert token_authority(config).authenticate(narrow.stdout.strip()).scopes == {"records:reports"}
    assert sightline("token", "--config", str(path), "--user", "tat-only", "--scope", "records:reports").returncode == 2
    store, audit, _ = open_domain(config)
    try:
        issued = [e for e in audit.entries(limit=1000) if e.event_type == "auth.token_issued"]
    finally:
        store.close()
    assert [e.outcome for e in issued] == ["success", "success", "failure"]
    assert issued[0].details["scope"] == ALL_SCOPES
