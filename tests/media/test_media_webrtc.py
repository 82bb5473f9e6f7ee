"""End to end through aiortc: a PacketTrack sent over a real peer connection, decoded."""

from __future__ import annotations

import asyncio
import time

import aiortc.codecs.h264 as aiortc_h264
import av
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from camera_adapters import MediaHubs
from camera_adapters.qrtime import read_qr_millis


async def test_loopback_passthrough_decodes_frames() -> None:
    hubs = MediaHubs(idle_timeout=0.5)
    hubs.register("lobby", "main", "synthetic://Loopback?w=640&h=360&fps=15")
    sender_pc, receiver_pc = RTCPeerConnection(), RTCPeerConnection()
    frames: list[av.VideoFrame] = []
    latencies: list[float] = []
    enough = asyncio.Event()

    async def consume(track) -> None:
        while len(frames) < 10:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            frames.append(frame)
            if len(frames) % 3 == 0:
                millis = read_qr_millis(frame.to_ndarray(format="bgr24"))
                if millis is not None:
                    latencies.append(time.time() * 1000 - millis)
        enough.set()

    @receiver_pc.on("track")
    def on_track(track) -> None:
        asyncio.ensure_future(consume(track))

    try:
        track = hubs.open_track("lobby")
        transceiver = sender_pc.addTransceiver(track, direction="sendonly")
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        transceiver.setCodecPreferences(h264)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        assert "H264" in receiver_pc.localDescription.sdp
        await asyncio.wait_for(enough.wait(), 15)
        assert len(frames) >= 10
        assert (frames[0].width, frames[0].height) == (640, 360)
        assert latencies and min(latencies) < 1000, latencies
        assert track.frames_sent >= 10
    finally:
        await sender_pc.close()
        await receiver_pc.close()
        await hubs.close()


def test_rtp_payloads_fit_public_safety_lte_mtu() -> None:
    from camera_adapters import aiortc_patch

    aiortc_patch.install()  # what the gateway does at start (tests: conftest_media)

    assert aiortc_h264.PACKET_MAX == 1200
    keyframe = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 40)
    keyframe.pts = 0
    keyframe.time_base = aiortc_h264.VIDEO_TIME_BASE
    payloads, _ = aiortc_h264.H264Encoder().pack(keyframe)
    assert len(payloads) > 1 and max(map(len, payloads)) <= 1200


async def test_whep_style_answerer_sends_h264() -> None:
    """The viewer offers; the gateway answers. aiortc applies codec preferences only in
    setRemoteDescription, so the sending transceiver must exist, H.264-only, beforehand."""
    hubs = MediaHubs(idle_timeout=0.5)
    hubs.register("lobby", "main", "synthetic://Whep?w=320&h=180&fps=15")
    viewer, gateway = RTCPeerConnection(), RTCPeerConnection()
    got = asyncio.get_running_loop().create_future()

    @viewer.on("track")
    def on_track(track) -> None:
        async def first_frames() -> None:
            frames = [await track.recv() for _ in range(5)]
            got.set_result(frames)

        asyncio.ensure_future(first_frames())

    try:
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        transceiver = gateway.addTransceiver(hubs.open_track("lobby"), direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        )
        await gateway.setRemoteDescription(viewer.localDescription)
        await gateway.setLocalDescription(await gateway.createAnswer())
        assert "VP8" not in gateway.localDescription.sdp
        await viewer.setRemoteDescription(gateway.localDescription)
        frames = await asyncio.wait_for(got, 15)
        assert (frames[0].width, frames[0].height) == (320, 180)
    finally:
        await viewer.close()
        await gateway.close()
        await hubs.close()
