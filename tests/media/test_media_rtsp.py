"""A real RTSP camera (gst-rtsp-server) through MediaHubs: pass-through, sharing, reconnect."""

from __future__ import annotations

import asyncio

import pytest

from camera_adapters import MediaHubs
from tests.conftest_media import PacketLog, decode_h264

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(60)]


async def test_shared_ingest_and_reconnect_without_renegotiation(rtsp_camera) -> None:
    camera = rtsp_camera.start("h264", fps=15)
    hubs = MediaHubs(idle_timeout=1.0)
    hubs.register("gym", "main", camera.url)
    logs = [PacketLog(hubs.open_track("gym")) for _ in range(3)]
    try:
        await logs[0].wait_for_count(1, timeout=10)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2.0)
        for log in logs:
            assert log.arrivals[0][2], "first packet of a track is not a keyframe"
        window_start = loop.time() - 2.0
        assert logs[0].count_since(window_start) >= 24
        frames = decode_h264(logs[0].packets)
        assert len(frames) >= len(logs[0].packets) - 1
        assert (frames[0].width, frames[0].height) == (640, 360)
        assert camera.clients == 1, f"{camera.clients} RTSP clients for 3 viewers"

        await asyncio.to_thread(camera.stop)
        await asyncio.sleep(3.0)
        before = len(logs[0].arrivals)
        await asyncio.to_thread(camera.restart)
        restarted = loop.time()
        await logs[0].wait_for_count(before + 5, timeout=5)
        assert logs[0].arrivals[before][0] - restarted < 5.0
        for log in logs:
            pts = [p for _, p, _, _ in log.arrivals]
            assert all(b > a for a, b in zip(pts, pts[1:])), "pts not monotonic across reconnect"
        resumed = logs[0].packets[before:]
        assert resumed[0].is_keyframe
        assert decode_h264(resumed), "resumed stream does not decode"
        stats = hubs.stats("gym")
        assert stats["reconnects"] >= 1 and stats["state"] == "live" and stats["viewers"] == 3
        assert camera.clients == 1
    finally:
        for log in logs:
            await log.close()
        await hubs.close()


async def test_h265_camera_is_transcoded_once(rtsp_camera) -> None:
    camera = rtsp_camera.start("h265", width=320, height=240, fps=15)
    hubs = MediaHubs(idle_timeout=1.0)
    hubs.register("hall", "sub", camera.url)
    logs = [PacketLog(hubs.open_track("hall", "sub")) for _ in range(2)]
    try:
        await logs[0].wait_for_count(20, timeout=15)
        assert logs[0].arrivals[0][2]
        frames = decode_h264(logs[0].packets)
        assert len(frames) >= 15 and (frames[0].width, frames[0].height) == (320, 240)
        assert camera.clients == 1
    finally:
        for log in logs:
            await log.close()
        await hubs.close()
