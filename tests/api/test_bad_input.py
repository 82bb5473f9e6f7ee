"""Whatever a client sends, the answer is a clear 4xx JSON error and nothing changes."""

from __future__ import annotations

import pytest

VALID = {"building": "lincoln-hs", "action": "LOCKDOWN", "incident_type": "armed_intruder"}


def assert_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    if code:
        assert body["error"] == code, body


async def snapshot(gw) -> tuple:
    return (
        [(e.id, e.state) for e in gw.gateway.emergencies.list()],
        len(gw.gateway.sessions),
        gw.gateway.audit.verify().ok,
    )


@pytest.fixture
async def active(site_file, run_gateway):
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin:
        emergency = (await admin.post("/api/v1/emergencies", json=VALID)).json()
        await admin.post(f"/api/v1/emergencies/{emergency['id']}/confirm")
    return gw


async def test_whep_bad_input(active) -> None:
    gw = active
    before = await snapshot(gw)
    officer = {"Authorization": f"Bearer {gw.token('officer')}"}
    sdp = {**officer, "Content-Type": "application/sdp"}
    async with gw.client() as c:
        assert_error(await c.post("/whep/hs-front", content="hello", headers=sdp), 400, "bad_sdp")
        assert_error(await c.post("/whep/hs-front", content="v=0\r\nm=video garbage\r\n", headers=sdp), 400, "bad_sdp")
        assert_error(await c.post("/whep/hs-front", content=b"\xff\xfe\x00", headers=sdp), 400, "bad_sdp")
        assert_error(await c.post("/whep/hs-front", content="v=0\r\n" * 20000, headers=sdp), 413, "too_large")
        assert_error(
            await c.post("/whep/hs-front", content="v=0", headers={**officer, "Content-Type": "text/plain"}), 415
        )
        assert_error(await c.post("/whep/no-such-camera", content="v=0", headers=sdp), 404, "not_found")
        assert_error(await c.post("/whep/hs-front?stream=ultra", content="v=0", headers=sdp), 422)
        assert_error(await c.post("/whep/hs-front", content="v=0", headers={"Content-Type": "application/sdp"}), 401)
        assert_error(
            await c.post(
                "/whep/hs-front",
                content="v=0",
                headers={"Authorization": "Bearer garbage.token.here", "Content-Type": "application/sdp"},
            ),
            401,
        )
        assert_error(await c.delete("/whep/hs-front/sessions/nope", headers=officer), 404)
    assert await snapshot(gw) == before
    assert gw.gateway.media.stats("hs-front", "main")["viewers"] == 0


async def test_api_bad_input(active) -> None:
    gw = active
    before = await snapshot(gw)
    async with gw.client("admin") as admin, gw.client() as anon:
        assert_error(await anon.get("/api/v1/cameras"), 401, "unauthorized")
        assert_error(await anon.get("/api/v1/cameras", headers={"Authorization": "Basic abc"}), 401)
        assert_error(await anon.get("/api/v1/cameras", headers={"Authorization": "Bearer"}), 401)
        assert_error(await anon.get("/api/v1/cameras", headers={"Authorization": "Bearer x" * 5000}), 401)
        assert_error(await admin.post("/api/v1/emergencies/nope/confirm"), 404, "not_found")
        assert_error(await admin.post("/api/v1/emergencies/nope/all-clear"), 404, "not_found")
        assert_error(await admin.get("/api/v1/emergencies/nope"), 404, "not_found")
        assert_error(await admin.post("/api/v1/emergencies/nope/explode"), 422)
        assert_error(
            await admin.post("/api/v1/emergencies", content="{not json", headers={"Content-Type": "application/json"}),
            422,
        )
        assert_error(await admin.post("/api/v1/emergencies", json={**VALID, "action": "PANIC"}), 422)
        assert_error(await admin.post("/api/v1/emergencies", json={**VALID, "building": "nowhere"}), 422, "invalid")
        assert_error(await admin.post("/api/v1/emergencies", json={**VALID, "extra": 1}), 422)
        assert_error(await admin.post("/api/v1/emergencies", json=[1, 2]), 422)
        # the building already has an open emergency
        assert_error(await admin.post("/api/v1/emergencies", json=VALID), 409, "conflict")
        # floor plans: no such building, no way out of the site folder, a caller first
        assert_error(await admin.get("/api/v1/buildings/nowhere/floor-plan"), 404, "not_found")
        assert_error(await admin.get("/api/v1/buildings/..%2F..%2Fetc%2Fpasswd/floor-plan"), 404, "not_found")
        assert_error(await admin.get("/api/v1/buildings/lincoln-hs/floor-plan/../../x"), 404)
        assert_error(await anon.get("/api/v1/buildings/lincoln-hs/floor-plan"), 401, "unauthorized")
    async with gw.client("officer") as officer:
        assert_error(await officer.post("/api/v1/emergencies", json={**VALID, "building": "washington-ms"}), 403)
    async with gw.client("principal") as principal:
        assert_error(await principal.post("/api/v1/emergencies", json={**VALID, "building": "washington-ms"}), 403)
        assert_error(await principal.get("/api/v1/buildings/washington-ms/floor-plan"), 403, "forbidden")
    async with gw.client("outsider") as outsider:
        assert_error(await outsider.get("/api/v1/buildings/lincoln-hs/floor-plan"), 403, "forbidden")
    assert await snapshot(gw) == before
    denied = [e for e in gw.gateway.audit.entries(limit=10_000) if e.outcome == "denied"]
    assert any(e.event_type == "auth.failure" for e in denied)
    assert any(e.actor_id == "officer" for e in denied)
    assert any(e.actor_id == "principal" for e in denied)


async def test_numeric_parameters_are_bounded(active) -> None:
    """Numbers out of range are the client's error (422), never the database's (500), and
    the OpenAPI document states the bounds."""
    gw = active
    async with gw.client("admin") as admin:
        for query in (
            "after_seq=9223372036854775808",
            "after_seq=99999999999999999999999999",
            "after_seq=-1",
            "after_seq=1e3",
            "limit=0",
            "limit=1001",
            "limit=9223372036854775808",
        ):
            assert_error(await admin.get(f"/api/v1/audit/events?{query}"), 422)
        assert (await admin.get("/api/v1/audit/events?after_seq=9223372036854775807")).json()["entries"] == []
        eid = (await admin.get("/api/v1/emergencies")).json()[0]["id"]
        for minutes in (0, 24 * 60 + 1, 2**63, -(2**70)):
            assert_error(
                await admin.post(f"/api/v1/emergencies/{eid}/extend", json={"minutes": minutes, "reason": "r"}), 422
            )
        doc = (await admin.get("/openapi.json")).json()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/audit/events"]["get"]["parameters"]}
    assert params["after_seq"]["minimum"] == 0 and params["after_seq"]["maximum"] == 2**63 - 1
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 1000


async def test_panic_signature_timestamps_that_are_not_numbers_are_refused(site_file, run_gateway) -> None:
    """A timestamp of Unicode digits ('²') or more digits than int() parses is a bad
    signature (401), not a crash."""
    from tests.api.test_activation import with_panic_button

    path = site_file()
    with_panic_button(path)
    gw = await run_gateway(path)
    async with gw.client() as c:
        for t in ("²", "¹²³", "9" * 5000, "-5", ""):
            r = await c.post(
                "/api/v1/triggers/panic/hs-office",
                content=b"{}",
                headers={
                    "X-Sightline-Signature": f"t={t},v1={'0' * 64}".encode("latin-1"),
                    "Content-Type": "application/json",
                },
            )
            assert_error(r, 401, "unauthorized")
    assert gw.gateway.emergencies.list() == []


async def test_unreadable_basic_credentials_at_the_token_endpoint_are_a_bad_client(site_file, run_gateway) -> None:
    """authlib's Basic parser raises on non-ASCII or non-UTF-8 credentials; the endpoint
    answers invalid_client (401) instead of 500."""
    import base64

    gw = await run_gateway(site_file())
    async with gw.client() as c:
        for value in (
            "Basic \xff\xfe".encode("latin-1"),
            "Basic é.é".encode("latin-1"),
            b"Basic " + base64.b64encode(b"records:\xff\xff"),
            b"Basic " + base64.b64encode(b"\xff\xfe:\x00"),
            b"Basic !!!",
        ):
            r = await c.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": value}
            )
            assert r.status_code == 401, (value, r.text)
            assert r.json()["error"] == "invalid_client"
