"""The lean RTP send path for PacketTrack viewers: every aiortc/aioice/pylibsrtp internal
the gateway relies on lives in this one module.

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

* ``RTCRtpSender._run_rtp`` is wrapped. For a PacketTrack it builds a :class:`LeanSender`
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
selector datagram transport). :func:`install` refuses (stock path everywhere) on other
versions unless ``SIGHTLINE_FASTSEND=force``; ``SIGHTLINE_FASTSEND=0`` disables it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
import sys
import time
from collections import deque
from typing import Any

import aioice
import aiortc
import pylibsrtp
from aiortc import rtcrtpsender as _rtcrtpsender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as _DtlsState
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.utils import random32

from .sendpath import RTP_HISTORY_PACKETS

try:
    from . import _rtpsend
except ImportError:  # not built (no C compiler at install time): aiortc's own sender
    _rtpsend = None

log = logging.getLogger(__name__)

CHECKED = {"aiortc": "1.16.", "aioice": "0.13.", "pylibsrtp": "1.0."}

# Treat a viewer as congested (drop to the next keyframe) when this much is queued in
# asyncio's transport buffer for its socket.
CONGESTED_BYTES = 1 << 20
NTP_DELTA = 2208988800  # 1900-01-01 to 1970-01-01 in seconds

_installed = False
_stock_run_rtp = RTCRtpSender._run_rtp
_stock_retransmit = RTCRtpSender._retransmit
_gso_supported = sys.platform.startswith("linux")  # UDP_SEGMENT
stats = {"lean": 0, "stock": 0, "gso_disabled": 0}


def _versions_ok() -> tuple[bool, str]:
    found = {"aiortc": aiortc.__version__, "aioice": aioice.__version__,
             "pylibsrtp": pylibsrtp.__version__}
    bad = [f"{k} {v} (checked {CHECKED[k]}x)" for k, v in found.items() if not v.startswith(CHECKED[k])]
    return (not bad, ", ".join(bad))


def _selector_transport_type() -> type | None:
    try:
        from asyncio.selector_events import _SelectorDatagramTransport
    except ImportError:  # pragma: no cover
        return None
    return _SelectorDatagramTransport


_SELECTOR_DGRAM = _selector_transport_type()


def _srtp_protect(session: Any) -> tuple[int, int]:
    """Addresses of libsrtp's ``srtp_protect`` and of ``session``'s context (pylibsrtp 1.0
    internals), for the C loop to protect packets in place without a Python call each."""
    from pylibsrtp._binding import ffi, lib

    protect = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    return protect, int(ffi.cast("uintptr_t", session._srtp[0]))


class LeanSender:
    """One viewer's RTP stream, sent synchronously by the hub's fan-out."""

    def __init__(self, sender: RTCRtpSender, codec: Any, dtls: Any, connection: Any,
                 pair: Any, ext_ids: tuple[int | None, int | None], mid: str | None) -> None:
        self._sender = sender
        self._dtls = dtls
        self._connection = connection
        self._pt = codec.payloadType
        self._ssrc = sender._ssrc
        self._seq = random_sequence_number()
        self._ts_origin = random32()
        self._protect, self._ctx = _srtp_protect(dtls._tx_srtp)
        self._history: deque[tuple[int, int, list[bytes]]] = deque()
        self._held = 0
        self._rtx_pt = sender._RTCRtpSender__rtx_payload_type
        self._rtx_ssrc = sender._rtx_ssrc
        self._gso = _gso_supported
        self._pair = None
        self._transport = None
        self._fd = -1
        self._addr = None
        self.closed = False
        self.plis = 0
        self.packets = 0
        self.retransmits = 0
        # header extensions: one-byte form (RFC 8285), in aiortc's order (mid, abs-send-time)
        mid_id, abs_id = ext_ids
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

    def _bind(self, pair: Any) -> None:
        if pair is None:
            raise ConnectionError("ICE connection has no nominated pair")
        transport = pair.protocol.transport
        sock = getattr(transport, "_sock", None) if type(transport) is _SELECTOR_DGRAM else None
        if sock is None:
            raise ConnectionError("nominated pair is not a plain UDP socket")
        self._pair, self._transport, self._addr = pair, transport, pair.remote_addr
        self._fd = sock.fileno()

    def close(self) -> None:
        self.closed = True
        self._history.clear()
        self._held = 0

    def _check(self) -> None:
        if self.closed or self._dtls._state is not _DtlsState.CONNECTED:
            raise ConnectionError("DTLS transport is not connected")
        pair = self._connection._nominated.get(1)
        if pair is not self._pair:
            self._bind(pair)
        if self._transport.is_closing():
            raise ConnectionError("ICE socket closed")

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
        self._check()
        sender = self._sender
        if not sender._enabled:
            return True
        transport = self._transport
        buffered = transport.get_write_buffer_size()
        if buffered > CONGESTED_BYTES:
            return False
        now = time.time()
        ts = (self._ts_origin + pts) & 0xFFFFFFFF
        first = self._seq
        self._seq, wire, err, unsent = _rtpsend.send_unit(
            self._protect, self._ctx, self._fd, self._addr, self._header(ts, now), first,
            payloads, self._gso, not buffered)
        self._remember(first, ts, payloads)
        if unsent is not None:
            if err not in (0, errno.EAGAIN, errno.EWOULDBLOCK):
                self._gso = False
                stats["gso_disabled"] += 1
                log.info("UDP GSO unavailable on this path (%s); sending datagrams one by one",
                         os.strerror(err))
            sendto, addr = transport.sendto, self._addr
            for datagram in unsent:  # keeps order behind what asyncio already buffered
                sendto(datagram, addr)
        elif err:
            # as asyncio's transport does: a lost datagram, not a dead peer
            transport._protocol.error_received(OSError(err, os.strerror(err)))
        n = len(payloads)
        self.packets += n
        # what aiortc's loop would have counted (stats, RTCP SR)
        sender._RTCRtpSender__ntp_timestamp = int((now + NTP_DELTA) * 4294967296)
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__octet_count += payload_bytes
        sender._RTCRtpSender__packet_count += n
        dtls = self._dtls
        dtls._RTCDtlsTransport__tx_bytes += wire
        dtls._RTCDtlsTransport__tx_packets += n
        return True

    def _remember(self, first: int, ts: int, payloads: list[bytes]) -> None:
        """Keep the last ``RTP_HISTORY_PACKETS`` packets' payloads for NACKs, unit by unit."""
        history = self._history
        history.append((first, ts, payloads))
        self._held += len(payloads)
        while self._held - len(history[0][2]) >= RTP_HISTORY_PACKETS:
            self._held -= len(history.popleft()[2])

    # -------------------------------------------------------------- RTCP answers

    def retransmit(self, seq: int) -> None:
        """Answer a NACK for ``seq`` from the history (RTX if negotiated)."""
        if self.closed:
            return
        for first, ts, payloads in reversed(self._history):
            index = (seq - first) & 0xFFFF
            if index < len(payloads):
                break
        else:
            return
        try:
            self._check()
        except ConnectionError:
            return
        payload = payloads[index]
        marker = 0x80 if index == len(payloads) - 1 else 0
        head = bytearray(self._header(ts, time.time()))
        head[1] |= marker
        sender = self._sender
        if self._rtx_pt is not None:
            rtx_seq = sender._RTCRtpSender__rtx_sequence_number
            sender._RTCRtpSender__rtx_sequence_number = (rtx_seq + 1) & 0xFFFF
            head[1] = (head[1] & 0x80) | self._rtx_pt
            struct.pack_into("!H", head, 2, rtx_seq)
            struct.pack_into("!I", head, 8, self._rtx_ssrc)
            packet = bytes(head) + struct.pack("!H", seq) + payload
        else:
            struct.pack_into("!H", head, 2, seq)
            packet = bytes(head) + payload
        data = self._dtls._tx_srtp.protect(packet)
        self._transport.sendto(data, self._addr)
        self.retransmits += 1
        dtls = self._dtls
        dtls._RTCDtlsTransport__tx_bytes += len(data)
        dtls._RTCDtlsTransport__tx_packets += 1


# ------------------------------------------------------------------ aiortc hooks


def _make_lean(sender: RTCRtpSender, codec: Any) -> LeanSender | None:
    """A lean sender for this aiortc sender, or None (with the reason logged) for stock."""
    try:
        if codec.mimeType.lower() != "video/h264":
            return _no("codec %s", codec.mimeType)
        dtls = sender.transport
        if dtls._state is not _DtlsState.CONNECTED or dtls._tx_srtp is None:
            return _no("DTLS not connected")
        connection = dtls.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return _no("no nominated ICE pair")
        if pair.local_candidate.type not in ("host", "srflx", "prflx"):
            return _no("local candidate type %s", pair.local_candidate.type)
        if type(pair.protocol.transport) is not _SELECTOR_DGRAM:
            return _no("transport %s", type(pair.protocol.transport).__name__)
        ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids
        mid = sender._RTCRtpSender__mid
        for x_id in (ids.mid, ids.abs_send_time):
            if x_id is not None and not 0 < x_id <= 14:
                return _no("two-byte header extension id %s", x_id)
        if mid is not None and not 0 < len(mid.encode("utf8")) <= 16:
            return _no("mid %r does not fit a one-byte extension", mid)
        return LeanSender(sender, codec, dtls, connection, pair, (ids.mid, ids.abs_send_time), mid)
    except (AttributeError, TypeError, ConnectionError) as exc:  # internals differ
        return _no("internals differ: %r", exc)


def _no(reason: str, *args: Any) -> None:
    log.debug("stock aiortc send path: " + reason, *args)
    stats["stock"] += 1
    return None


async def _run_rtp(self: RTCRtpSender, codec: Any) -> None:
    track = self.track
    run_lean = getattr(track, "run_lean", None)
    lean = _make_lean(self, codec) if run_lean is not None else None
    if lean is None:
        return await _stock_run_rtp(self, codec)
    stats["lean"] += 1
    self._sightline_lean = lean
    self._RTCRtpSender__rtp_started.set()
    try:
        await run_lean(lean)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        log.exception("lean RTP sender failed")
    finally:
        lean.close()
        self._sightline_lean = None
        # as aiortc's loop does on exit: stop the track, drop it
        if self._RTCRtpSender__track is not None:
            self._RTCRtpSender__track.stop()
            self._RTCRtpSender__track = None
        self._RTCRtpSender__rtp_exited.set()


async def _retransmit(self: RTCRtpSender, sequence_number: int) -> None:
    lean = getattr(self, "_sightline_lean", None)
    if lean is None:
        return await _stock_retransmit(self, sequence_number)
    lean.retransmit(sequence_number)


def _send_keyframe(self: RTCRtpSender) -> None:
    lean = getattr(self, "_sightline_lean", None)
    if lean is not None:
        lean.plis += 1
    _stock_send_keyframe(self)


_stock_send_keyframe = RTCRtpSender._send_keyframe


def install() -> bool:
    """Wrap aiortc's sender for PacketTrack senders. Returns whether the lean path is on."""
    global _installed
    if _installed:
        return True
    mode = os.environ.get("SIGHTLINE_FASTSEND", "1").lower()
    if mode in ("0", "off", "false", "no"):
        log.info("lean RTP send path disabled by SIGHTLINE_FASTSEND")
        return False
    ok, why = _versions_ok()
    if not ok and mode != "force":
        log.warning("lean RTP send path off: %s; using aiortc's own sender", why)
        return False
    if _rtpsend is None:
        log.warning("lean RTP send path off: camera_adapters._rtpsend is not built "
                    "(reinstall with a C compiler: pip install -e .); using aiortc's own sender")
        return False
    if _SELECTOR_DGRAM is None or not hasattr(RTCRtpSender, "_run_rtp") \
            or not hasattr(_rtcrtpsender, "random_sequence_number"):
        log.warning("lean RTP send path off: aiortc/asyncio internals differ")
        return False
    RTCRtpSender._run_rtp = _run_rtp
    RTCRtpSender._retransmit = _retransmit
    RTCRtpSender._send_keyframe = _send_keyframe
    _installed = True
    return True


def uninstall() -> None:
    """Back to aiortc's own sender (tests, A/B benchmarks)."""
    global _installed
    RTCRtpSender._run_rtp = _stock_run_rtp
    RTCRtpSender._retransmit = _stock_retransmit
    RTCRtpSender._send_keyframe = _stock_send_keyframe
    _installed = False
