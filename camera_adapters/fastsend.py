"""The lean RTP send path for PacketTrack viewers. It reaches aiortc's private state only
through :class:`camera_adapters.aiortc_patch.SenderLink`, and runs only where
:func:`camera_adapters.aiortc_patch.install` wrapped aiortc's sender for it.

Why
---
aiortc sends each RTP packet of each viewer through ``RTCRtpSender._run_rtp``: an
``RtpPacket`` object, ``serialize`` with header extensions, ``RTCDtlsTransport._send_rtp``
→ ``RTCIceTransport._send`` → ``aioice.Connection.sendto`` → ``StunProtocol.send_data``
(three coroutine hops) and one ``sendto`` syscall, plus one task wakeup per frame per
viewer. Measured with ``bench/relay.py`` that is ~1.1-1.3 % of a core per 720p viewer;
the target is 0.18 % (~11 µs of CPU per packet in total).

What this module does instead (only for a :class:`~camera_adapters.track.PacketTrack`
sender whose peer is connected over a plain UDP candidate pair):

* ``RTCRtpSender._run_rtp`` is wrapped (in aiortc_patch). For a PacketTrack it builds a :class:`LeanSender`
  and hands it to ``track.run_lean``; the hub then pushes every access unit to all its
  viewers' lean senders synchronously from one callback (no per-viewer task wakeups).
* Per unit and viewer, one call into C (``camera_adapters/_rtpsend.c``): the RTP header
  (version 2, marker, payload type, sequence number, timestamp, SSRC and exactly the
  one-byte header extensions aiortc itself sends -- mid and abs-send-time, as negotiated)
  is built once per unit here and stamped per packet there, next to the payload in a C
  scratch buffer, SRTP-protected *in place* by libsrtp (``srtp_protect`` on the DTLS
  transport's ``_tx_srtp`` session, skipping pylibsrtp's per-call wrapper and copies),
  and the packets leave in as few ``sendmsg`` calls as possible: Linux UDP GSO
  (``UDP_SEGMENT``) sends a run of equal-sized datagrams in one syscall; the receiver
  still gets ordinary datagrams. Without GSO (``EIO`` on xfrm/IPsec routes) every
  datagram is sent on its own -- still on the nominated pair's socket, without coroutine
  hops. A full socket buffer hands the rest to asyncio's transport, as its ``sendto``
  would.
* NACKs still reach ``RTCRtpSender._handle_rtcp_packet`` (aiortc's RTCP routing is
  untouched); ``_retransmit`` is wrapped to answer from the lean sender's history (the
  last ``RTP_HISTORY_PACKETS`` packets; RTX if negotiated, as aiortc does). RTCP SR/SDES
  stay aiortc's own task, fed from the counters below, so ``getStats`` bytes/packets and
  SR packet/octet counts stay meaningful.
* Anything unusual keeps aiortc's own path: another track type, a codec other than H.264,
  a two-byte header extension layout, a TURN-relayed local candidate (``TurnTransport``
  has no socket of ours), an event loop transport without a socket, or installed
  versions other than the ones checked below.

PLI/FIR: aiortc's answer is to force a keyframe from its encoder, which passthrough does
not have; re-sending the hub's cached GOP would move RTP timestamps backwards or play a
second of video fast-forward. With a 1 s camera GOP and a NACK history that holds a whole
keyframe, the next IDR is the recovery; lean senders count PLIs (``plis``) for stats.

Checked against aiortc 1.16.0, aioice 0.13.0, pylibsrtp 1.0.0 on CPython 3.11 (asyncio's
selector datagram transport); :func:`camera_adapters.aiortc_patch.choose_sender` keeps
aiortc's own sender on other versions unless ``SIGHTLINE_FASTSEND=force``, and
``SIGHTLINE_FASTSEND=0`` turns this path off.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import struct
import sys
import time
from collections import deque
from types import ModuleType
from typing import TYPE_CHECKING

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.utils import random32

from .aiortc_patch import NTP_DELTA, SenderLink, UdpTransport, plain_udp_socket, report_send_error
from .sendpath import RTP_HISTORY_PACKETS

if TYPE_CHECKING:
    from aioice.ice import CandidatePair

_rtpsend: ModuleType | None
try:
    _rtpsend = importlib.import_module(f"{__package__}._rtpsend")
except ImportError:  # not built (no C compiler at install time): aiortc's own sender
    _rtpsend = None

log = logging.getLogger(__name__)

# Treat a viewer as congested (drop to the next keyframe) when this much is queued in
# asyncio's transport buffer for its socket.
CONGESTED_BYTES = 1 << 20

_gso_supported = sys.platform.startswith("linux")  # UDP_SEGMENT
stats = {"lean": 0, "stock": 0, "gso_disabled": 0}


def extension_built() -> bool:
    """Whether the C send loop camera_adapters/_rtpsend.c is built."""
    return _rtpsend is not None


class LeanSender:
    """One viewer's RTP stream, sent synchronously by the hub's fan-out."""

    def __init__(self, link: SenderLink, pair: CandidatePair) -> None:
        self._link = link
        self._pt = link.payload_type
        self._ssrc = link.ssrc
        self._seq = random_sequence_number()
        self._ts_origin = random32()
        self._protect, self._ctx = link.srtp_protect, link.srtp_context
        self._history: deque[tuple[int, int, list[bytes]]] = deque()
        self._held = 0
        self._rtx_pt = link.rtx_payload_type
        self._rtx_ssrc = link.rtx_ssrc
        self._gso = _gso_supported
        self._pair: CandidatePair | None = None
        self._transport: UdpTransport | None = None
        self._fd = -1
        self._addr: tuple[str, int] = ("", 0)
        self.closed = False
        self.plis = 0
        self.packets = 0
        self.retransmits = 0
        # header extensions: one-byte form (RFC 8285), in aiortc's order (mid, abs-send-time)
        mid_id, abs_id, mid = link.mid_id, link.abs_send_time_id, link.mid
        ext = b""
        self._abs_at = -1
        if mid_id and mid:
            raw = mid.encode("utf8")
            ext += bytes([(mid_id << 4) | (len(raw) - 1)]) + raw
        if abs_id:
            ext += bytes([(abs_id << 4) | 2])
            self._abs_at = len(ext)
            ext += b"\x00\x00\x00"
        if ext:
            ext += b"\x00" * (-len(ext) % 4)
            self._ext = bytearray(struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext)
            self._abs_at += 4
            self._b0 = 0x90
        else:
            self._ext = bytearray()
            self._b0 = 0x80
        self._hlen = 12 + len(self._ext)
        self._head = struct.Struct(f"!BBHII{len(self._ext)}s")
        self._bind(pair)

    # -------------------------------------------------------------- plumbing

    def _bind(self, pair: CandidatePair | None) -> UdpTransport:
        if pair is None:
            raise ConnectionError("ICE connection has no nominated pair")
        transport, fd = plain_udp_socket(pair)
        self._pair, self._transport, self._addr, self._fd = pair, transport, pair.remote_addr, fd
        return transport

    def close(self) -> None:
        self.closed = True
        self._history.clear()
        self._held = 0

    def _check(self) -> UdpTransport:
        """The transport to send on; ConnectionError when the peer is gone."""
        if self.closed:
            raise ConnectionError("lean sender closed")
        pair = self._link.connected_pair()
        transport = self._transport
        if pair is not self._pair or transport is None:
            transport = self._bind(pair)
        if transport.is_closing():
            raise ConnectionError("ICE socket closed")
        return transport

    # -------------------------------------------------------------- sending

    def _header(self, ts: int, now: float) -> bytes:
        """This unit's RTP header template (sequence number and marker are set per packet)."""
        ext = self._ext
        if self._abs_at >= 0:
            abs_time = int((now + NTP_DELTA) * 262144) & 0xFFFFFF  # 6.18 fixed point
            a = self._abs_at
            ext[a], ext[a + 1], ext[a + 2] = abs_time >> 16, (abs_time >> 8) & 0xFF, abs_time & 0xFF
        return self._head.pack(self._b0, self._pt, 0, ts, self._ssrc, bytes(ext))

    def send_unit(self, payloads: list[bytes], pts: int, payload_bytes: int) -> bool:
        """Send one access unit's payloads. False if the viewer is congested (the caller
        drops to the next keyframe); ConnectionError when the peer is gone."""
        transport = self._check()
        link = self._link
        if not link.enabled():
            return True
        buffered = transport.get_write_buffer_size()
        if buffered > CONGESTED_BYTES:
            return False
        assert _rtpsend is not None  # aiortc_patch installs this path only when it is built
        now = time.time()
        ts = (self._ts_origin + pts) & 0xFFFFFFFF
        first = self._seq
        self._seq, wire, err, unsent = _rtpsend.send_unit(
            self._protect,
            self._ctx,
            self._fd,
            self._addr,
            self._header(ts, now),
            first,
            payloads,
            self._gso,
            not buffered,
        )
        self._remember(first, ts, payloads)
        if unsent is not None:
            if err not in (0, errno.EAGAIN, errno.EWOULDBLOCK):
                self._gso = False
                stats["gso_disabled"] += 1
                log.info("UDP GSO unavailable on this path (%s); sending datagrams one by one", os.strerror(err))
            sendto, addr = transport.sendto, self._addr
            for datagram in unsent:  # keeps order behind what asyncio already buffered
                sendto(datagram, addr)
        elif err:
            report_send_error(transport, err)
        n = len(payloads)
        self.packets += n
        link.count_sent(now, ts, payload_bytes, n, wire)  # what aiortc's loop would have counted
        return True

    def _remember(self, first: int, ts: int, payloads: list[bytes]) -> None:
        """Keep the last ``RTP_HISTORY_PACKETS`` packets' payloads for NACKs, unit by unit."""
        history = self._history
        history.append((first, ts, payloads))
        self._held += len(payloads)
        while self._held - len(history[0][2]) >= RTP_HISTORY_PACKETS:
            self._held -= len(history.popleft()[2])

    # -------------------------------------------------------------- RTCP answers

    def _lookup(self, seq: int) -> tuple[int, bytes, bool] | None:
        """(RTP timestamp, payload, last of its unit) of packet ``seq`` if still held."""
        for first, ts, payloads in reversed(self._history):
            index = (seq - first) & 0xFFFF
            if index < len(payloads):
                return ts, payloads[index], index == len(payloads) - 1
        return None

    def retransmit(self, seq: int) -> None:
        """Answer a NACK for ``seq`` from the history (RTX if negotiated)."""
        found = None if self.closed else self._lookup(seq)
        if found is None:
            return
        try:
            transport = self._check()
        except ConnectionError:
            return
        ts, payload, last = found
        marker = 0x80 if last else 0
        head = bytearray(self._header(ts, time.time()))
        head[1] |= marker
        link = self._link
        if self._rtx_pt is not None:
            head[1] = (head[1] & 0x80) | self._rtx_pt
            struct.pack_into("!H", head, 2, link.next_rtx_sequence_number())
            struct.pack_into("!I", head, 8, self._rtx_ssrc)
            packet = bytes(head) + struct.pack("!H", seq) + payload
        else:
            struct.pack_into("!H", head, 2, seq)
            packet = bytes(head) + payload
        data = link.protect(packet)
        transport.sendto(data, self._addr)
        self.retransmits += 1
        link.count_retransmit(len(data))


def make_lean(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> LeanSender | None:
    """A lean sender for this aiortc sender, or None (with the reason logged) for stock."""
    try:
        lean = _lean_or_why_not(sender, codec)
    except ConnectionError as exc:
        lean = str(exc)
    except (AttributeError, TypeError) as exc:
        lean = f"internals differ: {exc!r}"
    if isinstance(lean, str):
        log.debug("stock aiortc send path: %s", lean)
        stats["stock"] += 1
        return None
    stats["lean"] += 1
    return lean


def _lean_or_why_not(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> LeanSender | str:
    if codec.mimeType.lower() != "video/h264":
        return f"codec {codec.mimeType}"
    link = SenderLink(sender, codec)
    pair = link.connected_pair()
    if pair is None:
        return "no nominated ICE pair"
    if pair.local_candidate.type not in ("host", "srflx", "prflx"):
        return f"local candidate type {pair.local_candidate.type}"
    plain_udp_socket(pair)
    for x_id in (link.mid_id, link.abs_send_time_id):
        if x_id is not None and not 0 < x_id <= 14:
            return f"two-byte header extension id {x_id}"
    if link.mid is not None and not 0 < len(link.mid.encode("utf8")) <= 16:
        return f"mid {link.mid!r} does not fit a one-byte extension"
    return LeanSender(link, pair)
