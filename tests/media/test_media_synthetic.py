"""Synthetic camera → MediaHubs → PacketTrack, with real encoding and decoding."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from camera_adapters import MediaHubs, StreamUnavailable
from camera_adapters.qrtime import read_qr_millis
from tests.conftest_media import PacketLog, decode_h264

URL = "synthetic://Lobby%20East?w=640&h=360&fps=15"


@pytest.fixture
async def hubs():
    hubs = MediaHubs(idle_timeout=0.5, queue_frames=120)
    hubs.register("lobby", "main", URL)
    yield hubs
    await hubs.close()


async def test_rate_keyframe_first_and_clock_in_picture(hubs: MediaHubs) -> None:
    track = hubs.open_track("lobby")
    decoder = av.CodecContext.create("h264", "r")
    first = await asyncio.wait_for(track.recv(), 5)
    assert first.is_keyframe
    assert first.time_base == Fraction(1, 90000)
    assert bytes(first).startswith(b"\x00\x00\x00\x01\x67")  # SPS leads the IDR
    assert decoder.decode(av.Packet(bytes(first)))
    loop = asyncio.get_running_loop()
    start = loop.time()
    packets, offsets = [first], []
    while loop.time() - start < 2.0:
        packet = await asyncio.wait_for(track.recv(), 2)
        packets.append(packet)
        frames = decoder.decode(av.Packet(bytes(packet)))
        if frames and len(packets) % 5 == 0:
            millis = read_qr_millis(frames[-1].to_ndarray(format="bgr24"))
            assert millis is not None, "QR not readable from decoded frame"
            offsets.append(time.time() * 1000 - millis)
    assert len(packets) - 1 >= 24, f"{len(packets) - 1} packets in 2 s at 15 fps"
    pts = [p.pts for p in packets]
    assert pts == sorted(set(pts))
    assert len(decode_h264(packets)) >= len(packets) - 1
    assert offsets and all(0 <= o < 1000 for o in offsets), offsets
    assert track.frames_sent == len(packets)
    assert track.bytes_sent == sum(p.size for p in packets)
    stats = hubs.stats("lobby")
    assert stats["state"] == "live" and stats["viewers"] == 1 and stats["keyframes"] >= 2
    assert 12 <= stats["fps"] <= 18
    track.stop()


async def test_late_viewer_starts_at_cached_keyframe(hubs: MediaHubs) -> None:
    early = PacketLog(hubs.open_track("lobby"))
    await early.wait_for_count(20, timeout=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    late = hubs.open_track("lobby")
    first = await asyncio.wait_for(late.recv(), 1)
    assert loop.time() - start < 0.1
    assert first.is_keyframe
    assert decode_h264([first]), "cached keyframe does not decode on its own"
    late.stop()
    await early.close()
    assert hubs.stats("lobby")["viewers"] == 0


async def test_ingest_stops_after_idle_timeout_and_restarts(hubs: MediaHubs) -> None:
    track = hubs.open_track("lobby")
    await asyncio.wait_for(track.recv(), 5)
    hub = hubs._hub("lobby", "main")
    source = hub._source
    assert source is not None
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
    await asyncio.sleep(0.2)
    assert hub.ingesting, "stopped before idle_timeout"
    await asyncio.sleep(0.6)
    assert not hub.ingesting
    assert hubs.stats("lobby")["state"] == "idle"
    assert await asyncio.to_thread(source.join, 2), "source thread still running"
    again = hubs.open_track("lobby")
    assert (await asyncio.wait_for(again.recv(), 5)).is_keyframe
    again.stop()


async def test_slow_viewer_drops_to_next_keyframe() -> None:
    hubs = MediaHubs(idle_timeout=0.5, queue_frames=5)
    hubs.register("lobby", "main", URL)
    try:
        track = hubs.open_track("lobby")
        await asyncio.sleep(1.5)
        assert hubs.stats("lobby")["drops"] > 0
        assert (await asyncio.wait_for(track.recv(), 3)).is_keyframe
        track.stop()
    finally:
        await hubs.close()


async def test_unknown_camera_and_stream(hubs: MediaHubs) -> None:
    assert hubs.streams("lobby") == ["main"]
    assert hubs.streams("nope") == []
    with pytest.raises(StreamUnavailable):
        hubs.open_track("nope")
    with pytest.raises(StreamUnavailable):
        hubs.open_track("lobby", "sub")
    with pytest.raises(StreamUnavailable):
        hubs.stats("nope")
    with pytest.raises(ValueError):
        hubs.register("lobby", "side", URL)
    with pytest.raises(ValueError):
        hubs.register("lobby", "sub", "http://example/cam")


async def test_close_ends_tracks(hubs: MediaHubs) -> None:
    track = hubs.open_track("lobby")
    await asyncio.wait_for(track.recv(), 5)
    await hubs.close()
    with pytest.raises(MediaStreamError):
        while True:
            await asyncio.wait_for(track.recv(), 2)
