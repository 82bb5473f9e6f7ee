"""The shared send path: each camera access unit is packetised once for all its viewers.

aiortc's ``RTCRtpSender`` turns every ``av.Packet`` a track yields into RTP payloads with
``H264Encoder.pack`` (split the Annex-B bitstream, then STAP-A / FU-A). For N viewers of
one camera that is N identical packetisations of the same bytes. Here the hub wraps each
access unit in a :class:`SharedUnit`; every viewer track yields the *same* ``av.Packet``
for it, whose ``opaque`` carries a :class:`Packetization` that runs aiortc's own
``_split_bitstream`` + ``_packetize`` once and hands the same payload list (immutable
``bytes``) to every sender.

:func:`camera_adapters.aiortc_patch.install` makes :func:`get_encoder` the one
``aiortc.rtcrtpsender`` creates its encoder with, so H.264 senders get a
:class:`SharedH264Packer`. Its ``pack`` uses the cached payloads when the packet carries
them and otherwise falls back to aiortc's ``pack`` unchanged, so a packet from anywhere
else is still sent correctly. It also sets the sender's retransmission history to
:data:`RTP_HISTORY_PACKETS`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import aiortc.codecs.h264 as _h264
import av
from aiortc.codecs import get_encoder as _aiortc_get_encoder
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .aiortc_patch import h264_packetize, h264_split_nal_units, h264_stap_a
from .units import VIDEO_CLOCK, AccessUnit

TIME_BASE = Fraction(1, VIDEO_CLOCK)

# aiortc keeps the last RTP_HISTORY_SIZE (128) sent packets per sender to answer NACKs.
# A keyframe is sent as one burst, so if it has more packets than the history, a NACK for
# its first packets arrives after they were overwritten and the viewer must wait for the
# next IDR (a PLI; up to a GOP of frozen video). 512 slots x 1200-byte payloads covers a
# keyframe of up to 600 KB: a 720p IDR at 1.5 Mbps is ~25-150 KB (20-125 packets), a
# 4 MP camera's rarely above 400 KB. Payloads are shared across viewers (above), so a
# slot costs a viewer only the RtpPacket object, not another copy of the payload.
# A power of two, so ``seq % size`` slots stay consistent across the 16-bit wrap.
RTP_HISTORY_PACKETS = 512


class Packetization:
    """The RTP payloads of one access unit, computed on first use with aiortc's packer."""

    __slots__ = ("data", "_limit", "_payloads", "payload_bytes", "_lean_limit", "_lean", "lean_bytes")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._limit = -1
        self._payloads: list[bytes] = []
        self.payload_bytes = 0
        self._lean_limit = -1
        self._lean: list[bytes] = []
        self.lean_bytes = 0

    def lean_payloads(self) -> list[bytes]:
        """The same NAL units for the lean sender (camera_adapters.fastsend), FU-A cut into
        *full-size* fragments (only a NAL's last one shorter) instead of aiortc's equal
        split. RFC 6184 allows any cut; full-size fragments let one UDP GSO send carry a
        whole NAL (equal-sized datagrams, the last one shorter)."""
        limit = _h264.PACKET_MAX
        if self._lean_limit != limit:
            out: list[bytes] = []
            nals = iter(h264_split_nal_units(self.data))
            nal = next(nals, None)
            while nal is not None:
                if len(nal) > limit:
                    out.extend(_fu_a_full(nal, limit))
                    nal = next(nals, None)
                else:
                    packed, nal = h264_stap_a(nal, nals)
                    out.append(packed)
            self._lean = out
            self.lean_bytes = sum(map(len, out))
            self._lean_limit = limit
        return self._lean

    def payloads(self) -> list[bytes]:
        limit = _h264.PACKET_MAX  # aiortc reads it at call time; so do we
        if self._limit != limit:
            self._payloads = h264_packetize(h264_split_nal_units(self.data))
            self.payload_bytes = sum(map(len, self._payloads))
            self._limit = limit
        return self._payloads


def _fu_a_full(nal: bytes, limit: int) -> list[bytes]:
    """FU-A fragments of ``nal`` (RFC 6184 5.8), each ``limit`` bytes but the last."""
    step = limit - 2  # FU indicator + FU header
    indicator = (nal[0] & 0xE0) | 28
    kind = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    count = -(-len(body) // step)
    out = []
    for i in range(count):
        header = kind | (0x80 if i == 0 else 0) | (0x40 if i == count - 1 else 0)
        out.append(bytes((indicator, header)) + body[i * step : (i + 1) * step])
    return out


class SharedUnit:
    """An access unit as queued for viewers: one ``av.Packet`` for all of them, made lazily."""

    __slots__ = ("unit", "_packet", "_packetization")

    def __init__(self, unit: AccessUnit) -> None:
        self.unit = unit
        self._packet: av.Packet[Any] | None = None
        self._packetization: Packetization | None = None

    def packetization(self) -> Packetization:
        """The shared RTP payloads (the lean sender's input; no ``av.Packet`` needed)."""
        p = self._packetization
        if p is None:
            p = self._packetization = Packetization(self.unit.data)
        return p

    # AccessUnit's fields, so code that reads hub units (GOP cache, snapshots) still works
    @property
    def data(self) -> bytes:
        return self.unit.data

    @property
    def pts(self) -> int:
        return self.unit.pts

    @property
    def keyframe(self) -> bool:
        return self.unit.keyframe

    @property
    def size(self) -> int:
        return len(self.unit.data)

    def packet(self) -> av.Packet[Any]:
        """The shared packet; callers must not modify it (aiortc only reads it)."""
        packet = self._packet
        if packet is None:
            unit = self.unit
            packet = av.Packet(unit.data)
            packet.pts = unit.pts
            packet.dts = unit.pts
            packet.time_base = TIME_BASE
            packet.is_keyframe = unit.keyframe
            packet.opaque = self.packetization()
            self._packet = packet
        return packet


class SharedH264Packer(_h264.H264Encoder):
    """aiortc's H.264 encoder whose ``pack`` reuses a packet's shared packetisation."""

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        shared = packet.opaque
        if type(shared) is Packetization and packet.time_base == TIME_BASE and packet.pts is not None:
            return shared.payloads(), packet.pts
        return super().pack(packet)


def get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    """Drop-in for ``aiortc.codecs.get_encoder`` as the sender uses it."""
    if codec.mimeType.lower() == "video/h264":
        return SharedH264Packer()
    return _aiortc_get_encoder(codec)
