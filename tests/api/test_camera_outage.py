"""Issue 11: an RTSP camera that is down for 20 s while an officer watches is back on the
same WHEP session within 3 s of its return (the backoff had grown to 60 s before)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.api.test_slice import LOCKDOWN, SOURCE_FPS
from tests.whep_client import WhepViewer

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(120)]

OUTAGE_SECONDS = 20.0
RETURN_WITHIN = 3.0


async def test_watched_camera_back_within_3s_of_a_20s_outage(site_file, run_gateway, rtsp_camera) -> None:
    camera = rtsp_camera.start(codec="h264", fps=SOURCE_FPS)
    gw = await run_gateway(site_file({"synthetic://hs-front?w=640&h=360&fps=15": camera.url}))
    async with gw.client("admin") as admin:
        emergency = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
        confirmed = await admin.post(f"/api/v1/emergencies/{emergency['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text

    viewer = WhepViewer(gw.base_url, "hs-front", gw.token("officer"))
    try:
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        await viewer.wait_frames(10, timeout=10)
        [session] = gw.gateway.sessions.all()

        await asyncio.to_thread(camera.stop)
        stopped = time.monotonic()
        await asyncio.sleep(1.0)
        assert viewer.frames_between(stopped + 0.5, time.monotonic()) == 0, "the camera did not stop"
        await asyncio.sleep(OUTAGE_SECONDS - 1.0)
        assert gw.gateway.media.stats("hs-front", "main")["state"] in ("backoff", "reconnecting")
        await asyncio.to_thread(camera.restart)
        returned = time.monotonic()

        deadline = returned + RETURN_WITHIN + 5
        while not viewer.frames_between(returned, time.monotonic()):
            assert time.monotonic() < deadline, "no frames after the camera returned"
            await asyncio.sleep(0.05)
        first = next(t for t in viewer.frame_times if t >= returned)
        assert first - returned < RETURN_WITHIN, f"frames {first - returned:.1f} s after the camera returned"

        await asyncio.sleep(2.0)
        assert viewer.frames_between(first, time.monotonic()) >= SOURCE_FPS, "video did not resume steadily"
        assert gw.gateway.sessions.all() == [session], "the viewer was given a new session"
        assert viewer.pc.connectionState == "connected"
        stats = gw.gateway.media.stats("hs-front", "main")
        assert stats["state"] == "live" and stats["viewers"] == 1
    finally:
        await viewer.close()
