"""Issue 13: a PLI restarts a viewer at the newest cached keyframe, and a viewer moves
between a camera's streams, without its RTP timestamps ever going backwards."""

from __future__ import annotations

import asyncio

import pytest

from camera_adapters import MediaHubs
from camera_adapters.track import RESYNC_INTERVAL
from tests.conftest_media import decode_h264

pytestmark = pytest.mark.media

MAIN = "synthetic://lobby?w=320&h=180&fps=15"
SUB = "synthetic://lobby?w=160&h=90&fps=15"


@pytest.fixture
async def hubs():
    hubs = MediaHubs(idle_timeout=0.5, queue_frames=120)
    hubs.register("lobby", "main", MAIN)
    hubs.register("lobby", "sub", SUB)
    yield hubs
    await hubs.close()


async def recv_for(track, seconds: float) -> list:
    loop = asyncio.get_running_loop()
    end, packets = loop.time() + seconds, []
    while loop.time() < end:
        packets.append(await asyncio.wait_for(track.recv(), 2))
    return packets


async def test_pli_sends_the_newest_gop_now_with_increasing_timestamps(hubs: MediaHubs) -> None:
    track = hubs.open_track("lobby")
    before = await recv_for(track, 1.5)  # mid-GOP: the camera's next keyframe is not due yet
    assert track.request_keyframe()
    assert not track.request_keyframe(), "a second PLI at once must not send the GOP again"
    after = await recv_for(track, 0.3)
    assert after[0].is_keyframe, "the viewer did not start again at a keyframe"
    pts = [p.pts for p in before + after]
    assert pts == sorted(set(pts)), "RTP timestamps went backwards"
    frames = decode_h264(after)  # decodable on its own, from the keyframe on
    assert len(frames) >= len(after) - 1
    await asyncio.sleep(RESYNC_INTERVAL)
    assert track.request_keyframe()
    track.stop()


async def test_pli_off_waits_for_the_camera(hubs: MediaHubs, monkeypatch) -> None:
    monkeypatch.setattr(type(hubs.open_track("lobby")), "resync_on_pli", False)
    track = hubs.open_track("lobby")
    await recv_for(track, 1.2)
    assert not track.request_keyframe()
    track.stop()


async def test_move_to_sub_and_back_keeps_timestamps_increasing(hubs: MediaHubs) -> None:
    track = hubs.open_track("lobby")
    packets = await recv_for(track, 1.2)
    hubs.hold("lobby", "sub")
    await asyncio.sleep(1.0)
    hubs.move_track(track, "lobby", "sub")
    sub = await recv_for(track, 1.2)
    assert sub[0].is_keyframe
    assert hubs.stats("lobby", "sub")["viewers"] == 1 and hubs.stats("lobby", "main")["viewers"] == 0
    hubs.move_track(track, "lobby", "main", burst=False)  # waits for main's next keyframe
    main = await recv_for(track, 1.5)
    assert main[0].is_keyframe
    pts = [p.pts for p in packets + sub + main]
    assert pts == sorted(set(pts)), "RTP timestamps went backwards across the moves"
    sizes = {f.width for f in decode_h264(sub)} | {f.width for f in decode_h264(main)}
    assert sizes == {160, 320}
    hubs.unhold("lobby", "sub")
    track.stop()
