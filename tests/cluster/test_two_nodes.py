"""Two gateway nodes on one PostgreSQL database (DESIGN's scale-out, without a bus): an
all-clear made on one node ends the video an officer watches on the other within about a
second, a de-escalation there cuts the camera that left the scope, and the shared audit
chain still verifies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from tests.web_helpers import LOCKDOWN
from tests.whep_client import WhepViewer


async def wait_closed(viewer: WhepViewer, timeout: float) -> float:
    """Seconds until the gateway ended the viewer's peer connection."""
    start = time.monotonic()
    while viewer.pc.connectionState not in ("closed", "failed"):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"the session was still {viewer.pc.connectionState} after {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def frames_stop(viewer: WhepViewer, timeout: float) -> float:
    """Seconds until no frame arrived for half a second."""
    start = time.monotonic()
    while True:
        last = viewer.frame_times[-1] if viewer.frame_times else start
        if time.monotonic() - last > 0.5:
            return last - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"frames still arriving {timeout} s after the change on the other node")
        await asyncio.sleep(0.05)


async def test_change_on_one_node_cuts_video_on_the_other(pg_url, site_file, run_gateway) -> None:
    path = site_file({'node = "demo"': f'node = "demo"\ndatabase = "{pg_url}"'})
    node_a = await run_gateway(path)
    node_b = await run_gateway(path)
    async with node_a.client("admin") as admin:
        created = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        emergency = created.json()["id"]
        assert (await admin.post(f"/api/v1/emergencies/{emergency}/confirm")).json()["state"] == "active"

        hallway = WhepViewer(node_b.base_url, "hs-hall-a", node_b.token("officer"), stream="sub")
        front = WhepViewer(node_b.base_url, "hs-front", node_b.token("officer"), stream="sub")
        try:
            for viewer in (hallway, front):
                assert (await viewer.start()).status_code == 201
                await viewer.wait_frames(5, timeout=15)

            # SECURE on node A: the hallway leaves the scope; node B cuts it, keeps the entrance.
            changed = await admin.patch(f"/api/v1/emergencies/{emergency}", json={"action": "SECURE"})
            assert changed.status_code == 200, changed.text
            assert await frames_stop(hallway, 3.0) <= 1.0
            assert await wait_closed(hallway, 3.0) <= 1.5
            count = len(front.frame_times)
            await asyncio.sleep(0.5)
            assert len(front.frame_times) > count, "the entrance camera stayed in scope but stopped"

            # All-clear on node A ends the entrance video on node B.
            ended = await admin.post(f"/api/v1/emergencies/{emergency}/all-clear")
            assert ended.json()["state"] == "all_clear"
            assert await frames_stop(front, 3.0) <= 1.0
            assert await wait_closed(front, 3.0) <= 1.5
            refused = WhepViewer(node_b.base_url, "hs-front", node_b.token("officer"))
            assert (await refused.start()).status_code == 403
            await refused.close()
        finally:
            for viewer in (hallway, front):
                await viewer.close()

    audit = node_b.gateway.audit.entries(limit=10_000)
    ends = [e for e in audit if e.event_type == "view.ended"]
    assert {e.object for e in ends} >= {"camera:hs-hall-a", "camera:hs-front"}, [e.object for e in ends]
    verified = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
