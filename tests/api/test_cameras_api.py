"""Camera detail and health, snapshots, per-camera metrics, preload during an emergency,
and camera credentials kept encrypted."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import cv2
import numpy as np
import pytest

from camera_adapters.qrtime import read_qr_millis
from gateway.config import load_config
from gateway.runtime import camera_connections
from tests.whep_client import WhepViewer

LOCKDOWN = {"building": "lincoln-hs", "action": "LOCKDOWN", "incident_type": "armed_intruder"}


async def activate(gw, body=LOCKDOWN) -> str:
    async with gw.client("admin") as admin:
        emergency = (await admin.post("/api/v1/emergencies", json=body)).json()
        assert (await admin.post(f"/api/v1/emergencies/{emergency['id']}/confirm")).status_code == 200
    return emergency["id"]


async def test_health_for_admins_only_and_metrics(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    await activate(gw)
    viewer = WhepViewer(gw.base_url, "hs-front", gw.token("officer"))
    assert (await viewer.start()).status_code == 201
    await asyncio.sleep(2.5)
    async with gw.client("admin") as admin, gw.client("officer") as officer:
        detail = (await admin.get("/api/v1/cameras/hs-front")).json()
        main = detail["health"]["main"]
        assert main["state"] == "live" and main["fps"] > 10 and main["bitrate_kbps"] > 0
        assert 0 <= main["keyframe_age_s"] < 3 and main["reconnects"] == 0 and main["drops"] == 0
        assert set(detail["health"]) == {"main", "sub"}
        as_officer = (await officer.get("/api/v1/cameras/hs-front")).json()
        assert "health" not in as_officer and as_officer["id"] == "hs-front"
        assert "main" not in as_officer and "synthetic" not in str(as_officer)
        assert (await officer.get("/api/v1/cameras/hs-nurse")).status_code == 404
        metrics = (await admin.get("/metrics")).text
    assert 'sightline_camera_up{camera="hs-front",stream="main"} 1.0' in metrics
    assert 'sightline_camera_fps{camera="hs-front",stream="main"}' in metrics
    assert 'sightline_camera_up{camera="ms-front",stream="main"} 0.0' in metrics
    await viewer.close()


async def test_preload_follows_live_grants(site_file, run_gateway) -> None:
    path = site_file({'node = "demo"': 'node = "demo"\nidle_timeout_seconds = 0.5'})
    gw = await run_gateway(path)
    media = gw.gateway.media
    assert not media.preloaded()
    emergency = await activate(gw)
    await asyncio.sleep(1.0)
    assert ("hs-hall-a", "sub") in media.preloaded() and ("hs-front", "sub") in media.preloaded()
    assert ("hs-front", "main") not in media.preloaded()
    assert ("hs-nurse", "main") not in media.preloaded() and ("ms-front", "main") not in media.preloaded()
    stats = media.stats("hs-hall-a", "sub")
    assert stats["state"] == "live" and stats["viewers"] == 0 and stats["preloaded"]
    async with gw.client("admin") as admin:
        await admin.post(f"/api/v1/emergencies/{emergency}/all-clear")
    await asyncio.sleep(1.5)
    assert not media.preloaded()
    assert media.stats("hs-hall-a", "sub")["state"] == "idle"


async def test_snapshot_rules_and_rate(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("officer") as officer:
        assert (await officer.get("/api/v1/cameras/hs-front/snapshot.jpg")).status_code == 403
        await activate(gw)
        first = await officer.get("/api/v1/cameras/hs-front/snapshot.jpg")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (360, 640)
        assert read_qr_millis(image) is not None
        burst = await asyncio.gather(*(officer.get("/api/v1/cameras/hs-front/snapshot.jpg") for _ in range(10)))
        assert all(r.status_code == 200 for r in burst)
        assert gw.gateway.media._snapshotters[("hs-front", "main")].decodes == 1
        sub = await officer.get("/api/v1/cameras/hs-front/snapshot.jpg?stream=sub")
        assert cv2.imdecode(np.frombuffer(sub.content, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (180, 320)
        assert (await officer.get("/api/v1/cameras/hs-nurse/snapshot.jpg")).status_code == 403
    async with gw.client("outsider") as outsider:
        assert (await outsider.get("/api/v1/cameras/hs-front/snapshot.jpg")).status_code == 403
    served = [e for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "snapshot.served"]
    assert len(served) == 12 and served[0].actor_id == "officer"


def test_camera_add_rtsp_keeps_password_encrypted(site_file) -> None:
    path = site_file()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "cameras",
            "add",
            "--config",
            str(path),
            "--name",
            "Gym door",
            "--building",
            "lincoln-hs",
            "--zone",
            "gym",
            "--rtsp",
            "rtsp://viewer:s3cr%40t@10.0.0.9:554/stream1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "s3cr" not in result.stdout + result.stderr
    text = path.read_text()
    assert "s3cr" not in text and 'password = "enc:v1:' in text and 'main = "rtsp://10.0.0.9:554/stream1"' in text
    config = load_config(path)
    connection = camera_connections(config)["gym-door"]
    assert connection.password == "s3cr@t" and "s3cr" not in repr(connection)
    assert connection.url("main") == "rtsp://viewer:s3cr%40t@10.0.0.9:554/stream1"
    audit = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0


def test_plaintext_password_in_site_file_is_refused(site_file) -> None:
    path = site_file({'id = "hs-gym"': 'id = "hs-gym"\npassword = "hunter2"'})
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="plain text") as info:
        load_config(path)
    assert "hunter2" not in str(info.value)
