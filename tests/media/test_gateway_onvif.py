"""An ONVIF camera from discovery to an officer's screen: discover, add (password sealed),
view both profiles over WebRTC, snapshot — against the device simulator with a clock
two minutes off, fed by real RTSP servers."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys

import pytest

from tests.api.test_cameras_api import activate
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.rtsp

PASSWORD = "s3cret-Pa55"


def sightline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def test_onvif_discover_add_view_snapshot(site_file, run_gateway, rtsp_camera, onvif_camera, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    main = rtsp_camera.start(codec="h264", width=640, height=360, fps=15)
    sub = rtsp_camera.start(codec="h264", width=320, height=180, fps=15)
    device = onvif_camera.start(
        main.url, sub.url, username="admin", password=PASSWORD, clock_offset=120.0, name="GymEast"
    )
    path = site_file()

    found = sightline("cameras", "discover", "--timeout", "1", "--target", f"127.0.0.1:{device.udp_port}")
    assert found.returncode == 0 and "GymEast" in found.stdout, found.stdout + found.stderr

    added = sightline(
        "cameras",
        "add",
        "--config",
        str(path),
        "--name",
        "Gym east",
        "--building",
        "lincoln-hs",
        "--zone",
        "gym",
        "--onvif",
        f"127.0.0.1:{device.port}",
        "--username",
        "admin",
        env={"SIGHTLINE_CAMERA_PASSWORD": PASSWORD},
    )
    assert added.returncode == 0, added.stderr
    offset = re.search(r"clock off by \+(\d+) s", added.stdout)
    assert offset and 119 <= int(offset.group(1)) <= 121, added.stdout  # whole-second clocks: ±1 s
    site_text = path.read_text()
    assert PASSWORD not in site_text + added.stdout + added.stderr
    assert f'main = "{main.url}"' in site_text and f'sub = "{sub.url}"' in site_text

    wrong = sightline(
        "cameras",
        "add",
        "--config",
        str(path),
        "--name",
        "Gym west",
        "--building",
        "lincoln-hs",
        "--zone",
        "gym",
        "--onvif",
        f"127.0.0.1:{device.port}",
        "--username",
        "admin",
        "--password",
        "nope",
    )
    assert wrong.returncode == 2 and "credentials" in wrong.stderr and "Gym west" not in path.read_text()

    gw = await run_gateway(path)
    await activate(gw)
    viewers = {s: WhepViewer(gw.base_url, "gym-east", gw.token("officer"), stream=s) for s in ("main", "sub")}
    for viewer in viewers.values():
        viewer.keep_frames = 1
        assert (await viewer.start()).status_code == 201
    try:
        await asyncio.gather(*(v.wait_frames(10, timeout=20) for v in viewers.values()))
        assert (viewers["main"].frames[0].width, viewers["main"].frames[0].height) == (640, 360)
        assert (viewers["sub"].frames[0].width, viewers["sub"].frames[0].height) == (320, 180)
        async with gw.client("officer") as officer:
            shot = await officer.get("/api/v1/cameras/gym-east/snapshot.jpg?stream=sub")
        assert shot.status_code == 200 and shot.content[:2] == b"\xff\xd8"
    finally:
        await asyncio.gather(*(v.close() for v in viewers.values()))
    assert PASSWORD not in caplog.text
