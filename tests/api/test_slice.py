"""The whole slice, end to end: declare, watch live over WebRTC, all-clear cuts video,
and the audit log proves it — against a simulated camera and a real RTSP camera."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.whep_client import WhepViewer

SOURCE_FPS = 15
LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}


def sightline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60)


async def run_slice(gw, camera: str) -> None:
    async with gw.client("officer") as officer, gw.client("admin") as admin:
        # Before any emergency: the officer sees nothing and cannot open video.
        assert (await officer.get("/api/v1/cameras")).json() == []
        assert (await officer.get("/api/v1/grants/mine")).json() == []
        refused = WhepViewer(gw.base_url, camera, gw.token("officer"))
        assert (await refused.start()).status_code == 403
        await refused.close()

        created = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        assert created.status_code == 201, created.text
        emergency = created.json()
        assert emergency["state"] == "pending"
        confirmed = await admin.post(f"/api/v1/emergencies/{emergency['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text

        visible = {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        assert camera in visible
        assert "hs-nurse" not in visible and "hs-timeout" not in visible and "ms-front" not in visible
        grants = (await officer.get("/api/v1/grants/mine")).json()
        assert len(grants) == 1 and camera in grants[0]["cameras"]

        async with gw.client("outsider") as outsider:
            assert (await outsider.get("/api/v1/cameras")).json() == []
        outsider_view = WhepViewer(gw.base_url, camera, gw.token("outsider"))
        assert (await outsider_view.start()).status_code == 403
        await outsider_view.close()

        viewer = WhepViewer(gw.base_url, camera, gw.token("officer"))
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        assert answer.headers["content-type"].startswith("application/sdp")
        assert "H264" in answer.text and "m=audio" not in answer.text.replace("m=audio 0", "")
        assert viewer.location.startswith(f"/whep/{camera}/sessions/")
        stream_profile = gw.gateway.media.stats(camera, "main")["profile_level_id"]
        assert stream_profile and f"profile-level-id={stream_profile}" in answer.text, answer.text
        await viewer.wait_frames(5, timeout=10)
        await asyncio.sleep(1.0)
        window_start = time.monotonic()
        await asyncio.sleep(3.0)
        fps = viewer.frames_between(window_start, time.monotonic()) / 3.0
        assert fps >= 0.8 * SOURCE_FPS, f"decoded {fps:.1f} fps, source sends {SOURCE_FPS}"

        ended = await admin.post(f"/api/v1/emergencies/{emergency['id']}/all-clear")
        cleared_at = time.monotonic()
        assert ended.json()["state"] == "all_clear"
        await asyncio.sleep(2.0)
        late = viewer.frames_between(cleared_at + 1.0, time.monotonic())
        assert late == 0, f"{late} frames arrived more than 1 s after all-clear"
        assert len(gw.gateway.sessions) == 0
        await viewer.close()

        again = WhepViewer(gw.base_url, camera, gw.token("officer"))
        assert (await again.start()).status_code == 403
        await again.close()
        assert (await officer.get("/api/v1/cameras")).json() == []
        assert (await officer.get("/api/v1/grants/mine")).json() == []

    events = [e.event_type for e in gw.gateway.audit.entries(limit=10_000)]
    for expected in (
        "emergency.declared",
        "emergency.activated",
        "grant.started",
        "view.started",
        "grant.ended",
        "view.ended",
        "emergency.all_clear",
        "view.denied",
    ):
        assert expected in events, f"{expected} missing from the audit log"


async def test_slice_with_simulated_camera(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    await run_slice(gw, "hs-front")
    await verify_then_tamper(gw)


@pytest.mark.rtsp
async def test_slice_with_rtsp_camera(site_file, run_gateway, rtsp_camera) -> None:
    camera = rtsp_camera.start(codec="h264", fps=SOURCE_FPS)
    path = site_file({"synthetic://hs-front?w=640&h=360&fps=15": camera.url})
    gw = await run_gateway(path)
    await run_slice(gw, "hs-front")
    assert camera.clients == 1


async def verify_then_tamper(gw) -> None:
    ok = sightline("audit", "verify", "--config", str(gw.config_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    db = gw.gateway.config.database
    target = next(e.seq for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "grant.started")
    with sqlite3.connect(db) as conn:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("UPDATE audit_log SET reason = 'edited' WHERE seq = ?", (target,))
        triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for name in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE seq = ?", (target,))
    bad = sightline("audit", "verify", "--config", str(gw.config_path))
    assert bad.returncode != 0
    assert f"seq {target}" in bad.stdout, bad.stdout
