"""Emergency activation end to end: scope follows the action with live sessions, restarts
keep grants, signed panic webhooks, dispatcher requests, extensions, notifications."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx

from emergency.clock import FakeClock
from gateway.config import load_config
from gateway.identity.signing import SIGNATURE_HEADER, sign
from gateway.notifier import seal_secret
from gateway.runtime import Gateway
from tests.whep_client import WhepViewer

PANEL_SECRET = "panel-shared-secret"


async def declare(admin: httpx.AsyncClient, action: str, building: str = "lincoln-hs") -> str:
    created = await admin.post(
        "/api/v1/emergencies", json={"building": building, "action": action, "incident_type": "armed_intruder"}
    )
    assert created.status_code == 201, created.text
    confirmed = await admin.post(f"/api/v1/emergencies/{created.json()['id']}/confirm")
    assert confirmed.json()["state"] == "active"
    return created.json()["id"]


async def test_scope_follows_the_action_and_de_escalation_cuts_video(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin, gw.client("officer") as officer:
        eid = await declare(admin, "SECURE")
        visible = {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        assert visible == {"hs-parking", "hs-front"}
        hallway = WhepViewer(gw.base_url, "hs-hall-a", gw.token("officer"))
        assert (await hallway.start()).status_code == 403
        await hallway.close()

        escalated = await admin.patch(f"/api/v1/emergencies/{eid}", json={"action": "LOCKDOWN"})
        assert escalated.json()["action"] == "LOCKDOWN"
        assert "hs-hall-a" in {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        hallway = WhepViewer(gw.base_url, "hs-hall-a", gw.token("officer"))
        front = WhepViewer(gw.base_url, "hs-front", gw.token("officer"))
        assert (await hallway.start()).status_code == 201 and (await front.start()).status_code == 201
        await asyncio.gather(hallway.wait_frames(5, 10), front.wait_frames(5, 10))

        await admin.patch(f"/api/v1/emergencies/{eid}", json={"action": "SECURE"})
        changed_at = time.monotonic()
        await asyncio.sleep(2.0)
        assert hallway.frames_between(changed_at + 1.0, time.monotonic()) == 0
        assert front.frames_between(changed_at + 1.0, time.monotonic()) > 10, "the entrance stays in scope"
        assert {s.camera_id for s in gw.gateway.sessions.all()} == {"hs-front"}
        await asyncio.gather(hallway.close(), front.close())

    entries = gw.gateway.audit.entries(limit=10_000)
    rescoped = [e for e in entries if e.event_type == "grant.rescoped"]
    assert len(rescoped) == 2 and rescoped[-1].details["removed"] and rescoped[-1].actor_id == "admin"
    ended = [e for e in entries if e.event_type == "view.ended" and e.details["viewer"] == "officer"]
    assert any(e.reason == "camera left the emergency's scope" for e in ended)


async def test_restart_keeps_grants_and_applies_expiry_missed_while_down(site_file) -> None:
    config = load_config(site_file())
    clock = FakeClock()
    first = Gateway(config, clock)
    await first.start()
    admin = first.tokens.authenticate(first.tokens.issue("admin")[0]).actor
    emergency = first.emergencies.declare(
        admin, building="lincoln-hs", action="LOCKDOWN", incident_type="armed_intruder"
    )
    first.emergencies.confirm(admin, emergency.id)
    before = first.emergencies.live_grants()
    await first.stop()

    clock.advance(30 * 60)
    second = Gateway(config, clock)
    await second.start()
    after = second.emergencies.live_grants()
    assert [(g.id, g.camera_ids, g.expires) for g in after] == [(g.id, g.camera_ids, g.expires) for g in before]
    assert second.media.preloaded(), "a restarted gateway preloads the cameras of live grants"
    await second.stop()

    clock.advance(31 * 60)  # the 60-minute time-box ends while the gateway is down
    third = Gateway(config, clock)
    await third.start()
    assert third.emergencies.live_grants() == []
    expired = [e for e in third.audit.entries(limit=10_000) if e.event_type == "grant.ended"]
    assert expired and all(e.reason == "expired" for e in expired)
    assert third.store.get_grant(before[0].id).ended_at == before[0].expires
    await third.stop()


def with_panic_button(path) -> None:
    sealed = seal_secret(path, PANEL_SECRET)
    path.write_text(
        path.read_text()
        + f'''
[[panic_buttons]]
id = "hs-office"
building = "lincoln-hs"
action = "LOCKDOWN"
incident_type = "armed_intruder"
secret = "{sealed}"
'''
    )


def signed(body: dict, *, secret: str = PANEL_SECRET, age: int = 0) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {SIGNATURE_HEADER: sign(secret, raw, int(time.time()) - age), "Content-Type": "application/json"}


async def test_panic_webhook_declares_and_refuses_forgeries(site_file, run_gateway) -> None:
    path = site_file()
    with_panic_button(path)
    assert PANEL_SECRET not in path.read_text()
    gw = await run_gateway(path)
    async with gw.client() as c:
        for raw, headers, status, reason in (
            (*signed({"event_id": "e1"}, secret="wrong"), 401, "bad or missing signature"),
            (*signed({"event_id": "e1"}, age=600), 401, "stale signature timestamp"),
            (b'{"event_id": "e1"}', {"Content-Type": "application/json"}, 401, "bad or missing signature"),
        ):
            answer = await c.post("/api/v1/triggers/panic/hs-office", content=raw, headers=headers)
            assert answer.status_code == status and answer.json()["detail"] == reason
        assert gw.gateway.emergencies.list() == []

        raw, headers = signed({"event_id": "e1"})
        first = await c.post("/api/v1/triggers/panic/hs-office", content=raw, headers=headers)
        assert first.status_code == 201 and first.json()["state"] == "pending", first.text
        replay = await c.post("/api/v1/triggers/panic/hs-office", content=raw, headers=headers)
        assert replay.status_code == 409
        again = await c.post(
            "/api/v1/triggers/panic/hs-office",
            content=signed({"event_id": "e2"})[0],
            headers=signed({"event_id": "e2"})[1],
        )
        assert again.json() == {"status": "already_open", "emergency": first.json()["emergency"]}
        assert (await c.post("/api/v1/triggers/panic/nope", content=raw, headers=headers)).status_code == 404

    emergency = gw.gateway.emergencies.get(first.json()["emergency"])
    assert emergency.trigger == "panic" and emergency.declared_by == "panic:hs-office"
    denied = [e for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "trigger.denied"]
    assert [e.reason for e in denied] == [
        "bad or missing signature",
        "stale signature timestamp",
        "bad or missing signature",
        "event 'e1' was already received",
        "no such panic button",
    ]
    assert all(e.outcome == "denied" and e.source == "127.0.0.1" for e in denied)


async def test_dispatcher_request_approved_denied_and_auto_approved(site_file, run_gateway) -> None:
    path = site_file(
        {"confirm_window_seconds = 10": 'confirm_window_seconds = 10\nauto_approve_calls = ["911_call_from_school"]'}
    )
    gw = await run_gateway(path)
    async with (
        gw.client("dispatcher") as dispatcher,
        gw.client("admin") as admin,
        gw.client("principal") as principal,
        gw.client("officer") as officer,
    ):
        asked = await dispatcher.post(
            "/api/v1/access-requests",
            json={"building": "lincoln-hs", "call_type": "officer_request", "reason": "Unit 12 reports shots nearby"},
        )
        assert asked.status_code == 201 and asked.json()["state"] == "pending"
        assert (await officer.post(f"/api/v1/access-requests/{asked.json()['id']}/approve")).status_code == 403
        assert [r["id"] for r in (await principal.get("/api/v1/access-requests?pending_only=true")).json()] == [
            asked.json()["id"]
        ]
        approved = await principal.post(f"/api/v1/access-requests/{asked.json()['id']}/approve")
        assert approved.json()["state"] == "approved"
        emergency = gw.gateway.emergencies.get(approved.json()["emergency"])
        assert emergency.state == "active" and emergency.trigger == "dispatcher"
        assert "hs-hall-a" in {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        twice = await admin.post(f"/api/v1/access-requests/{asked.json()['id']}/deny")
        assert twice.status_code == 409

        other = await dispatcher.post(
            "/api/v1/access-requests",
            json={"building": "washington-ms", "call_type": "officer_request", "reason": "check"},
        )
        denied = await admin.post(f"/api/v1/access-requests/{other.json()['id']}/deny", json={"reason": "no threat"})
        assert denied.json()["state"] == "denied"
        assert not [e for e in gw.gateway.emergencies.list() if e.building == "washington-ms"]

        auto = await dispatcher.post(
            "/api/v1/access-requests",
            json={
                "building": "washington-ms",
                "call_type": "911_call_from_school",
                "reason": "911 call from the office",
            },
        )
        assert auto.json()["state"] == "approved" and auto.json()["decided_by"] == "policy"
        assert gw.gateway.emergencies.get(auto.json()["emergency"]).state == "active"
        # The school has an emergency open: a further request is refused, not left pending forever.
        moot = await dispatcher.post(
            "/api/v1/access-requests",
            json={"building": "washington-ms", "call_type": "officer_request", "reason": "second call"},
        )
        assert moot.status_code == 409 and "already has an emergency open" in moot.json()["detail"]
        assert not (await admin.get("/api/v1/access-requests?pending_only=true")).json()
        assert (
            await officer.post(
                "/api/v1/access-requests", json={"building": "lincoln-hs", "call_type": "x", "reason": "y"}
            )
        ).status_code == 403


async def test_extensions_need_a_reason_and_a_second_admin_past_the_maximum(site_file, run_gateway) -> None:
    path = site_file({"hard_max_minutes = 480": "hard_max_minutes = 120"})
    gw = await run_gateway(path)
    async with gw.client("admin") as admin, gw.client("principal") as principal:
        eid = await declare(admin, "LOCKDOWN")
        start = gw.gateway.emergencies.get(eid)
        assert (await admin.post(f"/api/v1/emergencies/{eid}/extend", json={"minutes": 30})).status_code == 422
        within = await admin.post(
            f"/api/v1/emergencies/{eid}/extend", json={"minutes": 60, "reason": "still searching"}
        )
        assert within.json()["expires_at"] == (start.expires_at + timedelta(minutes=60)).isoformat()
        grants = gw.gateway.emergencies.live_grants()
        assert all(g.expires == start.expires_at + timedelta(minutes=60) for g in grants)

        beyond = await admin.post(f"/api/v1/emergencies/{eid}/extend", json={"minutes": 60, "reason": "suspect inside"})
        assert beyond.json()["pending_extension"]["requested_by"] == "admin"
        assert beyond.json()["expires_at"] == within.json()["expires_at"]
        assert (await admin.post(f"/api/v1/emergencies/{eid}/extension/approve")).status_code == 403
        approved = await principal.post(f"/api/v1/emergencies/{eid}/extension/approve")
        assert approved.json()["pending_extension"] is None and approved.json()["extensions"] == 2
        assert approved.json()["expires_at"] == (start.expires_at + timedelta(minutes=120)).isoformat()
    extended = [e for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "emergency.extended"]
    assert [e.details["approved_by"] for e in extended] == [["admin"], ["admin", "principal"]]
    assert extended[-1].details["beyond_hard_max"] is True


async def test_threat_text_never_blocks_and_is_filled_later(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin, gw.client("officer") as officer:
        eid = await declare(admin, "LOCKDOWN")
        assert (await admin.get(f"/api/v1/emergencies/{eid}")).json()["threat_basis_missing"] is True
        filled = await admin.patch(f"/api/v1/emergencies/{eid}", json={"threat_basis": "Armed person seen at door 4"})
        assert filled.json()["threat_basis"] == "Armed person seen at door 4"
        assert filled.json()["threat_basis_missing"] is False
        assert "threat_basis" not in (await officer.get(f"/api/v1/emergencies/{eid}")).json()
        assert (await officer.patch(f"/api/v1/emergencies/{eid}", json={"action": "HOLD"})).status_code == 403
        assert (await admin.patch(f"/api/v1/emergencies/{eid}", json={})).status_code == 422


async def test_notifications_commit_with_the_change(site_file, run_gateway) -> None:
    path = site_file()
    sealed = seal_secret(path, "cad-secret")
    path.write_text(
        path.read_text()
        + f'''
[[webhooks]]
id = "cad"
url = "http://127.0.0.1:9/hook"
topics = ["emergency.activated", "emergency.all_clear"]
secret = "{sealed}"
'''
    )
    gw = await run_gateway(path)
    async with gw.client("admin") as admin:
        eid = await declare(admin, "LOCKDOWN")
        await admin.post(f"/api/v1/emergencies/{eid}/all-clear")
    rows = gw.gateway.store.list_notifications("pending")
    assert sorted(n.topic for n in rows) == ["emergency.activated", "emergency.all_clear"]
    assert all(n.payload["emergency"]["id"] == eid and "threat_basis" not in n.payload["emergency"] for n in rows)
