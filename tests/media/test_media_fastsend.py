"""The lean send path (camera_adapters.fastsend): real aiortc viewers decode what it sends,
NACKs are answered, payloads fit the LTE MTU, sequence numbers and timestamps survive a
camera reconnect, and a closed viewer gets nothing more."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from camera_adapters import aiortc_patch, fastsend
from camera_adapters.h264enc import H264Encoder
from camera_adapters.hub import Hub
from camera_adapters.rtp_mtu import RTP_PAYLOAD_MAX
from camera_adapters.source import Source
from camera_adapters.units import AccessUnit
from gateway.media.webrtc import answer_offer

FPS = 15
TICKS = 90_000 // FPS


def encoded_units(count: int, width: int = 480, height: int = 270, seed: int = 3) -> list[AccessUnit]:
    """x264 on a noisy picture: keyframes of many FU-A fragments (GSO runs, NACK targets)."""
    rng = np.random.default_rng(seed)
    encoder = H264Encoder(width, height, FPS)
    units: list[AccessUnit] = []
    base = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    for i in range(count):
        y = np.roll(base, i * 4, axis=1)
        y[: height // 4] = rng.integers(0, 256, (height // 4, width), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(y, format="yuv420p")
        units += [AccessUnit(d, p, k) for d, p, k in encoder.encode(frame, i * TICKS)]
    return units


UNITS = encoded_units(45)


class ManualSource(Source):
    """A camera the test drives: ``push`` hands units to the hub as a source thread would."""

    instances: list[ManualSource] = []

    def __init__(self, url, sink) -> None:
        super().__init__(url, sink)
        ManualSource.instances.append(self)

    def start(self) -> None:
        self.sink.on_state("live")

    def run(self) -> None:  # pragma: no cover - never started as a thread
        pass

    def push(self, unit: AccessUnit) -> None:
        self.sink.on_unit(unit)


class Viewer:
    """A real aiortc viewer that decodes, and records every RTP packet aiortc accepted."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.transceiver = self.pc.addTransceiver("video", direction="recvonly")
        self.frames: list[av.VideoFrame] = []
        self.rtp: list = []  # (ssrc, pt, seq, ts, marker, payload) after SRTP
        self.drop_seq: int | None = None
        self.dropped: list[int] = []
        self._task: asyncio.Task | None = None

        receiver = self.transceiver.receiver
        original = receiver._handle_rtp_packet

        async def handle(packet, arrival_time_ms):
            self.rtp.append(
                (
                    packet.ssrc,
                    packet.payload_type,
                    packet.sequence_number,
                    packet.timestamp,
                    packet.marker,
                    packet.payload,
                )
            )
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = handle

        @self.pc.on("track")
        def on_track(track) -> None:
            self._task = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track) -> None:
        while True:
            try:
                self.frames.append(await track.recv())
            except MediaStreamError:
                return

    def hook_drops(self) -> None:
        """Drop the datagram carrying RTP sequence number ``drop_seq`` once (SRTP keeps the
        RTP header in clear), as a lossy radio link would."""
        connection = self.transceiver.receiver.transport.transport._connection
        original = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            if (
                self.drop_seq is not None
                and len(data) > 12
                and data[0] & 0xC0 == 0x80
                and not 192 <= data[1] <= 223
                and int.from_bytes(data[2:4], "big") == self.drop_seq
                and self.drop_seq not in self.dropped
            ):
                self.dropped.append(self.drop_seq)
                return
            original(data, component)

        connection.data_received = data_received

    def media(self, ssrc: int) -> list:
        return [p for p in self.rtp if p[0] == ssrc]

    async def close(self) -> None:
        await self.pc.close()
        if self._task:
            self._task.cancel()


async def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


class Rig:
    """One hub fed by a ManualSource, gateway peers answering WHEP-style offers."""

    def __init__(self) -> None:
        ManualSource.instances.clear()
        self.hub = Hub("manual://cam", ManualSource, idle_timeout=5, queue_frames=120)
        self.viewers: list[Viewer] = []
        self.gateways: list[RTCPeerConnection] = []
        self.tracks = []
        self._next = 0
        self.pts_base = 0

    @property
    def source(self) -> ManualSource:
        return ManualSource.instances[-1]

    async def connect(self, viewer: Viewer, rtx: bool = False):
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        track = self.hub.open_track()
        if rtx:
            gateway = RTCPeerConnection()
            transceiver = gateway.addTransceiver(track, direction="sendonly")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType in ("video/H264", "video/rtx")])
            await gateway.setRemoteDescription(viewer.pc.localDescription)
            await gateway.setLocalDescription(await gateway.createAnswer())
            answer = gateway.localDescription.sdp
        else:
            gateway, answer = await answer_offer(viewer.pc.localDescription.sdp, track)
        from aiortc import RTCSessionDescription

        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.viewers.append(viewer)
        self.gateways.append(gateway)
        self.tracks.append(track)
        sender = gateway.getTransceivers()[0].sender
        await wait_until(
            lambda: aiortc_patch.lean_sender_of(sender) is not None or sender._RTCRtpSender__rtp_started.is_set()
        )
        return gateway, sender, track

    async def play(self, count: int, interval: float = 1 / 30, new_session: bool = False, pts_jump: int = 0) -> None:
        """Push ``count`` units (cycling the encoded GOPs), faster than real time."""
        for i in range(count):
            unit = UNITS[self._next % len(UNITS)]
            if self._next and self._next % len(UNITS) == 0:
                self.pts_base += len(UNITS) * TICKS
            self._next += 1
            self.source.push(
                AccessUnit(
                    unit.data, unit.pts + self.pts_base + pts_jump, unit.keyframe, new_session=new_session and i == 0
                )
            )
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for v in self.viewers:
            await v.close()
        for g in self.gateways:
            await g.close()
        await self.hub.close()


@pytest.fixture
async def rig():
    r = Rig()
    yield r
    await r.close()


@pytest.mark.parametrize("gso", [True, False])
async def test_real_viewer_decodes_lean_sender(rig, monkeypatch, gso) -> None:
    monkeypatch.setattr(fastsend, "_gso_supported", gso)
    viewer = Viewer()
    gateway, sender, track = await rig.connect(viewer)
    lean = aiortc_patch.lean_sender_of(sender)
    assert lean is not None, "PacketTrack over a host pair must use the lean path"
    assert lean._gso is gso
    await rig.play(30)
    await wait_until(lambda: len(viewer.frames) >= 25)
    assert (viewer.frames[-1].width, viewer.frames[-1].height) == (480, 270)
    # every packet arrives (a loopback burst may overflow the viewer's socket; NACK repairs)
    await wait_until(lambda: len({p[2] for p in viewer.media(sender._ssrc)}) == lean.packets)
    media = {p[2]: p for p in viewer.media(sender._ssrc)}.values()
    assert media and max(len(p[5]) for p in media) <= RTP_PAYLOAD_MAX
    assert track.frames_sent >= 30
    # getStats stays meaningful
    report = await sender.getStats()
    outbound = [s for s in report.values() if s.type == "outbound-rtp"][0]
    assert outbound.packetsSent == lean.packets == len(media)
    assert outbound.bytesSent == sum(len(p[5]) for p in media)
    transport = [s for s in report.values() if s.type == "transport"][0]
    assert transport.packetsSent >= lean.packets


async def test_header_extensions_match_aiortc(rig) -> None:
    """mid and abs-send-time are sent as aiortc negotiated them (BUNDLE demux needs mid)."""
    viewer = Viewer()
    raw: list[bytes] = []
    gateway, sender, _ = await rig.connect(viewer)
    ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids
    assert ids.mid and ids.abs_send_time
    from aiortc.rtp import RtpPacket

    receiver_map = viewer.pc.getTransceivers()[0].receiver.transport._rtp_header_extensions_map
    original = viewer.pc.getTransceivers()[0].receiver.transport._handle_rtp_data

    async def capture(data, arrival_time_ms):
        raw.append(data)
        await original(data, arrival_time_ms)

    viewer.pc.getTransceivers()[0].receiver.transport._handle_rtp_data = capture
    await rig.play(5)
    await wait_until(lambda: len(raw) >= 5)
    packet = RtpPacket.parse(raw[-1], receiver_map)
    assert packet.extensions.mid == sender._RTCRtpSender__mid == viewer.transceiver.mid
    assert packet.extensions.abs_send_time is not None


@pytest.mark.parametrize("rtx", [False, True])
async def test_nacked_packet_is_retransmitted(rig, rtx) -> None:
    viewer = Viewer()
    viewer.hook_drops()
    gateway, sender, _ = await rig.connect(viewer, rtx=rtx)
    lean = aiortc_patch.lean_sender_of(sender)
    await rig.play(5)
    await wait_until(lambda: len(viewer.media(sender._ssrc)) >= 10)
    viewer.drop_seq = (lean._seq + 3) & 0xFFFF  # the 4th packet of what comes next
    await rig.play(10)
    await wait_until(lambda: viewer.dropped and lean.retransmits >= 1)
    lost = viewer.dropped[0]
    if rtx:
        rtx_packets = [p for p in viewer.rtp if p[0] == sender._rtx_ssrc]
        await wait_until(lambda: [p for p in viewer.rtp if p[0] == sender._rtx_ssrc])
        rtx_packets = [p for p in viewer.rtp if p[0] == sender._rtx_ssrc]
        assert int.from_bytes(rtx_packets[0][5][:2], "big") == lost
    else:
        await wait_until(lambda: [p for p in viewer.media(sender._ssrc) if p[2] == lost])
    frames_before = len(viewer.frames)
    await rig.play(5)
    await wait_until(lambda: len(viewer.frames) > frames_before)


async def test_sequence_and_timestamps_continue_across_reconnect(rig) -> None:
    viewer = Viewer()
    gateway, sender, _ = await rig.connect(viewer)
    await rig.play(20)
    # the camera reboots: new RTSP session, its clock restarts near zero
    rig.pts_base = -UNITS[20 % len(UNITS)].pts + 123
    rig._next = 0
    await rig.play(20, new_session=True)
    await wait_until(lambda: len(viewer.frames) >= 38)
    media = viewer.media(sender._ssrc)
    seqs = [p[2] for p in media]
    # Loopback UDP may drop a packet under load (a gap of a few); a reset across the
    # reconnect would show as a step back or a leap of thousands.
    steps = [(b - a) & 0xFFFF for a, b in zip(seqs, seqs[1:], strict=False)]
    assert all(1 <= step <= 8 for step in steps), f"RTP sequence numbers jumped: {steps}"
    assert sum(step == 1 for step in steps) >= 0.9 * len(steps)
    stamps = [p[3] for p in media]
    steps = [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(s < 0x80000000 for s in steps), "RTP timestamps went backwards"


@pytest.mark.parametrize("how", ["track.stop", "pc.close"])
async def test_closing_stops_sending_immediately(rig, how) -> None:
    viewer = Viewer()
    gateway, sender, track = await rig.connect(viewer)
    lean = aiortc_patch.lean_sender_of(sender)
    await rig.play(5)
    await wait_until(lambda: lean.packets > 0)
    if how == "track.stop":
        track.stop()  # what gateway.media.sessions does first on all-clear
    else:
        await gateway.close()
    sent = lean.packets
    await rig.play(5)
    assert lean.packets == sent
    assert track not in rig.hub._tracks


async def test_other_viewers_unaffected_when_one_leaves(rig) -> None:
    a, b = Viewer(), Viewer()
    _, sender_a, track_a = await rig.connect(a)
    _, sender_b, _ = await rig.connect(b)
    await rig.play(10)
    track_a.stop()
    n = len(b.frames)
    await rig.play(10)
    await wait_until(lambda: len(b.frames) >= n + 8)


async def test_falls_back_to_aiortc_when_disabled(rig, monkeypatch) -> None:
    aiortc_patch.uninstall()
    try:
        viewer = Viewer()
        gateway, sender, _ = await rig.connect(viewer)
        assert aiortc_patch.lean_sender_of(sender) is None
        await rig.play(15)
        await wait_until(lambda: len(viewer.frames) >= 10)
    finally:
        assert aiortc_patch.install().lean


def test_hooks_installed() -> None:
    from aiortc.rtcrtpsender import RTCRtpSender as S

    assert S._run_rtp is aiortc_patch._run_rtp
    assert not aiortc_patch.version_problems(aiortc_patch.installed_versions())
    assert threading.current_thread()  # scratch buffers are per thread


def test_lean_packetization_full_size_fragments_same_nals() -> None:
    """The lean sender's FU-A fragments are full size (GSO-friendly) and reassemble to
    exactly the NAL units aiortc's equal split carries."""
    from aiortc.codecs.h264 import (
        H264Decoder,  # noqa: F401  (depacketizer below)
        H264PayloadDescriptor,
    )

    from camera_adapters.sendpath import Packetization

    def nals(payloads: list[bytes]) -> bytes:
        out = b""
        for p in payloads:
            _, data = H264PayloadDescriptor.parse(p)
            out += data
        return out

    for unit in UNITS[:6]:
        p = Packetization(unit.data)
        lean, stock = p.lean_payloads(), p.payloads()
        assert nals(lean) == nals(stock)
        assert max(map(len, lean)) <= RTP_PAYLOAD_MAX
        assert p.lean_bytes == sum(map(len, lean))
        fu = [x for x in lean if x[0] & 0x1F == 28]
        for a in fu[:-1]:
            if not a[1] & 0x40:  # not the last fragment of its NAL
                assert len(a) == RTP_PAYLOAD_MAX
