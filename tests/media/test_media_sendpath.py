"""The shared send path: one packetisation per access unit for every viewer, payloads
identical to aiortc's own packer, within the LTE MTU, and a NACK history that holds a
whole keyframe."""

from __future__ import annotations

import asyncio

import aiortc.codecs.h264 as aiortc_h264
import aiortc.rtcrtpsender as aiortc_sender
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtcpParameters, RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RtpPacket

from camera_adapters import MediaHubs
from camera_adapters.h264enc import H264Encoder
from camera_adapters.rtp_mtu import RTP_PAYLOAD_MAX
from camera_adapters.sendpath import (
    RTP_HISTORY_PACKETS,
    Packetization,
    SharedH264Packer,
    SharedUnit,
    get_encoder,
)
from camera_adapters.units import AccessUnit
from tests.conftest_media import PacketLog

H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)


def aiortc_pack(data: bytes, pts: int) -> list[bytes]:
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = aiortc_h264.VIDEO_TIME_BASE
    return aiortc_h264.H264Encoder().pack(packet)[0]


def encoded_units(width: int, height: int, count: int, seed: int = 1) -> list[AccessUnit]:
    """Real x264 output: a noisy picture so the keyframe is large (many FU-A fragments)."""
    rng = np.random.default_rng(seed)
    encoder = H264Encoder(width, height, 15)
    units = []
    for i in range(count):
        y = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(y, format="yuv420p")
        units += [AccessUnit(d, p, k) for d, p, k in encoder.encode(frame, i * 6000)]
    return units


def test_shared_packetization_matches_aiortc_packer() -> None:
    units = encoded_units(1280, 720, 4)
    # plus small NALs that aiortc aggregates into STAP-A and a 3-byte start code
    units.append(
        AccessUnit(
            b"\x00\x00\x00\x01\x67"
            + b"\x42" * 20
            + b"\x00\x00\x01\x68"
            + b"\xce" * 4
            + b"\x00\x00\x00\x01\x65"
            + bytes(range(256)) * 20,
            99_000,
            True,
        )
    )
    assert any(u.keyframe for u in units)
    for unit in units:
        shared = SharedUnit(unit)
        packet = shared.packet()
        ours, ts = SharedH264Packer().pack(packet)
        assert ts == unit.pts
        assert ours == aiortc_pack(unit.data, unit.pts)
        assert max(map(len, ours)) <= RTP_PAYLOAD_MAX
        # the second viewer gets the very same list: packetised once
        assert SharedH264Packer().pack(shared.packet())[0] is ours


def test_packer_falls_back_for_foreign_packets() -> None:
    unit = encoded_units(320, 180, 1)[0]
    packet = av.Packet(unit.data)
    packet.pts = 1234
    packet.time_base = aiortc_h264.VIDEO_TIME_BASE
    assert SharedH264Packer().pack(packet) == aiortc_h264.H264Encoder().pack(packet)


def test_packetization_follows_payload_limit(monkeypatch) -> None:
    data = b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 40
    shared = Packetization(data)
    assert max(map(len, shared.payloads())) <= RTP_PAYLOAD_MAX
    monkeypatch.setattr(aiortc_h264, "PACKET_MAX", 600)
    assert max(map(len, shared.payloads())) <= 600


def test_aiortc_sender_uses_shared_packer() -> None:
    from camera_adapters import aiortc_patch

    aiortc_patch.install()  # what the gateway does at start (tests: conftest_media)

    assert aiortc_sender.get_encoder is get_encoder
    assert isinstance(aiortc_sender.get_encoder(H264), SharedH264Packer)
    assert aiortc_sender.RTP_HISTORY_SIZE == RTP_HISTORY_PACKETS


async def test_viewers_share_one_packet_per_unit() -> None:
    hubs = MediaHubs(idle_timeout=0.5)
    hubs.register("lobby", "main", "synthetic://Share?w=320&h=180&fps=15")
    logs = [PacketLog(hubs.open_track("lobby")) for _ in range(3)]
    try:
        await asyncio.gather(*(log.wait_for_count(5, 10) for log in logs))
        first = [log.packets[:5] for log in logs]
        for i in range(5):
            assert first[0][i] is first[1][i] is first[2][i]
    finally:
        for log in logs:
            await log.close()
        await hubs.close()


class FakeDtlsTransport:
    """Just enough of RTCDtlsTransport for an RTCRtpSender: records what it would send."""

    state = "connected"
    _stats_id = "fake"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def _register_rtp_sender(self, sender, parameters) -> None:
        pass

    def _unregister_rtp_sender(self, sender) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


class ListTrack(MediaStreamTrack):
    """A minimal track yielding the given packets, then waiting forever."""

    kind = "video"

    def __init__(self, packets: list) -> None:
        super().__init__()
        self._packets = list(packets)

    async def recv(self):
        if self._packets:
            return self._packets.pop(0)
        await asyncio.Event().wait()


async def send_through_aiortc(packets: list) -> tuple[aiortc_sender.RTCRtpSender, FakeDtlsTransport, list[RtpPacket]]:
    transport = FakeDtlsTransport()
    sender = aiortc_sender.RTCRtpSender(ListTrack(packets), transport)
    await sender.send(RTCRtpSendParameters(codecs=[H264], rtcp=RTCRtcpParameters(cname="t"), muxId="0"))
    for _ in range(200):
        await asyncio.sleep(0.01)
        rtp = [RtpPacket.parse(d) for d in transport.sent if not 192 <= d[1] <= 223]
        if rtp and sum(p.marker for p in rtp) == len(packets):
            return sender, transport, rtp
    raise AssertionError("aiortc did not send everything")


async def test_nack_history_holds_a_whole_keyframe() -> None:
    # A keyframe of 400 KB: more packets than aiortc's default history of 128.
    rng = np.random.default_rng(7)
    data = b"\x00\x00\x00\x01\x65" + rng.integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    shared = SharedUnit(AccessUnit(data, 0, True))
    sender, transport, rtp = await send_through_aiortc([shared.packet()])
    try:
        assert 128 < len(rtp) <= RTP_HISTORY_PACKETS
        before = len(transport.sent)
        first = rtp[0]
        await sender._retransmit(first.sequence_number)  # the viewer NACKs the first packet
        assert len(transport.sent) == before + 1
        assert RtpPacket.parse(transport.sent[-1]).payload == first.payload
    finally:
        await sender.stop()


@pytest.mark.rtsp
async def test_rtp_payloads_within_mtu_on_real_720p_stream(rtsp_camera) -> None:
    """A real RTSP camera at 720p through the hub and aiortc's sender: no RTP payload
    exceeds 1200 bytes, and every keyframe fits the NACK history."""
    camera = rtsp_camera.start(codec="h264", width=1280, height=720, fps=15)
    hubs = MediaHubs(idle_timeout=0.5)
    hubs.register("cam", "main", camera.url)
    log = PacketLog(hubs.open_track("cam"))
    try:
        await log.wait_for_count(20, 20)
        packets = list(log.packets[:20])
        assert any(p.is_keyframe for p in packets)
        sender, _, rtp = await send_through_aiortc(packets)
        try:
            assert max(len(p.payload) for p in rtp) <= RTP_PAYLOAD_MAX
            keyframe_packets = max(len(SharedH264Packer().pack(p)[0]) for p in packets if p.is_keyframe)
            assert keyframe_packets <= RTP_HISTORY_PACKETS
        finally:
            await sender.stop()
    finally:
        await log.close()
        await hubs.close()
