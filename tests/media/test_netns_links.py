"""Issue 13: real aiortc viewers in their own network namespace (tests/netns.py) on bad links."""

from __future__ import annotations

import asyncio

import pytest

from tests.netns import netns  # noqa: F401  (fixture)
from tests.netns_gateway import fps_between, longest_freeze, now, report, start_link_gateway

pytestmark = [pytest.mark.media, pytest.mark.timeout(150)]


@pytest.fixture
async def link(site_file, netns):  # noqa: F811
    lg, server, task = await start_link_gateway(site_file(), netns)
    yield lg
    await lg.gateway.sessions.close_all("test over")
    server.should_exit = True
    await asyncio.wait_for(task, 15)


async def test_clean_link_carries_15_fps(link) -> None:
    t0 = now()
    proc = link.viewer("hs-front", "--seconds", "8")
    r = await report(proc, 30)
    frames = r["frames"]
    assert frames, r
    start = frames[0] + 1
    fps = fps_between(frames, start, t0 + 8)
    print(f"clean: {fps:.1f} fps, longest freeze {longest_freeze(frames, start, t0 + 8):.2f} s")
    assert fps >= 12
