"""Real RTSP cameras behind the gateway: one ingest however many officers watch, and one
shared transcode for a camera that is not browser-safe H.264."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.test_cameras_api import activate
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.rtsp


async def open_viewers(gw, camera: str, count: int) -> list[WhepViewer]:
    viewers = [WhepViewer(gw.base_url, camera, gw.token("officer")) for _ in range(count)]
    answers = await asyncio.gather(*(v.start() for v in viewers))
    assert [a.status_code for a in answers] == [201] * count
    return viewers


async def test_twenty_viewers_share_one_rtsp_session(site_file, run_gateway, rtsp_camera) -> None:
    camera = rtsp_camera.start(codec="h264", width=320, height=180, fps=15)
    gw = await run_gateway(site_file({"synthetic://hs-hall-a?w=640&h=360&fps=15": camera.url}))
    await activate(gw)
    viewers = await open_viewers(gw, "hs-hall-a", 20)
    try:
        await asyncio.gather(*(v.wait_frames(10, timeout=20) for v in viewers))
        assert gw.gateway.media.stats("hs-hall-a", "main")["viewers"] == 20
        assert camera.clients == 1
    finally:
        await asyncio.gather(*(v.close() for v in viewers))


async def test_h265_camera_reaches_two_viewers_through_one_transcode(site_file, run_gateway, rtsp_camera) -> None:
    camera = rtsp_camera.start(codec="h265", width=320, height=240, fps=15)
    gw = await run_gateway(site_file({"synthetic://hs-gym?w=640&h=360&fps=15": camera.url}))
    await activate(gw)
    viewers = await open_viewers(gw, "hs-gym", 2)
    try:
        await asyncio.gather(*(v.wait_frames(15, timeout=20) for v in viewers))
        stats = gw.gateway.media.stats("hs-gym", "main")
        assert stats["transcoding"] == "hevc" and stats["viewers"] == 2
        assert camera.clients == 1
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
