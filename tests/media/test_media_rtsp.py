"""A real RTSP camera (gst-rtsp-server) through MediaHubs: pass-through, sharing, reconnect,
and a watched camera back on screen within 3 s of its return whatever the backoff."""

from __future__ import annotations

import asyncio

import pytest

from camera_adapters import MediaHubs, backoff
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


# Unwatched, this table would make the source wait a minute after its second failure, so a
# short outage here stands for the 20 s one that reaches the minute with the real table
# (tests/api/test_camera_outage.py runs that one end to end).
LONG_BACKOFF = (0.5, 60)
RETURN_WITHIN = 3.0


async def _wait_for_detail(hubs: MediaHubs, camera_id: str, detail: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while hubs.stats(camera_id)["detail"] != detail:
        assert loop.time() < deadline, hubs.stats(camera_id)
        await asyncio.sleep(0.05)


async def test_watched_camera_returns_within_3s_without_renegotiation(rtsp_camera, monkeypatch) -> None:
    monkeypatch.setattr(backoff, "BACKOFF_SECONDS", LONG_BACKOFF)
    camera = rtsp_camera.start("h264", fps=15)
    hubs = MediaHubs(idle_timeout=1.0)
    hubs.register("gym", "main", camera.url)
    log = PacketLog(hubs.open_track("gym"))
    try:
        await log.wait_for_count(10, timeout=10)
        await asyncio.to_thread(camera.stop)
        await asyncio.sleep(5.0)  # several refused attempts: unwatched, the next wait would be 60 s
        assert hubs.stats("gym")["state"] in ("backoff", "reconnecting")
        before = len(log.arrivals)
        await asyncio.to_thread(camera.restart)
        returned = asyncio.get_running_loop().time()
        await log.wait_for_count(before + 1, timeout=RETURN_WITHIN + 2)
        back = log.arrivals[before][0] - returned
        assert back < RETURN_WITHIN, f"frames {back:.1f} s after the camera returned"
        await log.wait_for_count(before + 5, timeout=5)
        pts = [p for _, p, _, _ in log.arrivals]
        assert all(b > a for a, b in zip(pts, pts[1:])), "pts not monotonic across the outage"
        assert log.packets[before].is_keyframe and decode_h264(log.packets[before:])
        stats = hubs.stats("gym")
        assert stats["state"] == "live" and stats["viewers"] == 1 and stats["reconnects"] >= 3
    finally:
        await log.close()
        await hubs.close()


async def test_viewer_arriving_during_a_long_backoff_gets_video_at_once(rtsp_camera, monkeypatch) -> None:
    """Ingest idling after the last viewer left backs off long; a new viewer cuts that short."""
    monkeypatch.setattr(backoff, "BACKOFF_SECONDS", LONG_BACKOFF)
    camera = rtsp_camera.start("h264", fps=15)
    hubs = MediaHubs(idle_timeout=120.0)
    hubs.register("gym", "main", camera.url)
    first = PacketLog(hubs.open_track("gym"))
    second: PacketLog | None = None
    try:
        await first.wait_for_count(5, timeout=10)
        await first.close()
        await asyncio.to_thread(camera.stop)
        await _wait_for_detail(hubs, "gym", "retry in 60s", timeout=10)
        await asyncio.to_thread(camera.restart)
        await asyncio.sleep(1.0)
        assert hubs.stats("gym")["state"] == "backoff", "nobody watches: the long wait should stand"
        arrived = asyncio.get_running_loop().time()
        second = PacketLog(hubs.open_track("gym"))
        await second.wait_for_count(1, timeout=RETURN_WITHIN + 2)
        assert second.arrivals[0][0] - arrived < RETURN_WITHIN and second.arrivals[0][2]
    finally:
        if second is not None:
            await second.close()
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
