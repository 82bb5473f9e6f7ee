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
* Per unit and viewer: the RTP header (version 2, marker, payload type, sequence number,
  timestamp, SSRC and exactly the one-byte header extensions aiortc itself sends -- mid
  and abs-send-time, as negotiated) is written with one precompiled ``struct`` straight
  into a C scratch buffer next to the payload, SRTP-protected *in place* by libsrtp
  (``srtp_protect`` on the DTLS transport's ``_tx_srtp`` session, skipping pylibsrtp's
  per-call Python wrapper and copies), and the packets of a unit leave in as few
  ``sendmsg`` calls as possible: Linux UDP GSO (``UDP_SEGMENT``) sends a run of
  equal-sized datagrams in one syscall; the receiver still gets ordinary datagrams.
  Without GSO (other OS, ``EIO`` on xfrm/IPsec routes) every datagram is sent on its
  own -- still on the nominated pair's socket, without coroutine hops.
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
import socket
import struct
import sys
import threading
import time
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

log = logging.getLogger(__name__)

CHECKED = {"aiortc": "1.16.", "aioice": "0.13.", "pylibsrtp": "1.0."}

# libsrtp appends at most this many bytes (auth tag / GCM tag, no MKI)
SRTP_TRAILER_MAX = 16 + 128  # SRTP_MAX_TRAILER_LEN in libsrtp 2 (tag + MKI)
SCRATCH_BYTES = 256 * 1024
# Linux UDP GSO limits: at most 64 segments and one IP datagram's worth of bytes.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
# Treat a viewer as congested (drop to the next keyframe) when this much is queued in
# asyncio's transport buffer for its socket.
CONGESTED_BYTES = 1 << 20
NTP_DELTA = 2208988800  # 1900-01-01 to 1970-01-01 in seconds
HISTORY_MASK = RTP_HISTORY_PACKETS - 1
assert RTP_HISTORY_PACKETS & HISTORY_MASK == 0

_HEADER = struct.Struct("!BBHII")

_installed = False
_stock_run_rtp = RTCRtpSender._run_rtp
_stock_retransmit = RTCRtpSender._retransmit
_gso_supported = sys.platform.startswith("linux")
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


class _Srtp:
    """In-place ``srtp_protect`` on a pylibsrtp ``Session`` (pylibsrtp 1.0 internals)."""

    __slots__ = ("ffi", "lib", "ctx", "lenp")

    def __init__(self, session: Any) -> None:
        from pylibsrtp._binding import ffi, lib

        self.ffi, self.lib = ffi, lib
        self.ctx = session._srtp[0]
        self.lenp = ffi.new("int *")


class _Scratch(threading.local):
    """A per-thread C buffer the packets of one unit are built, protected and sent from."""

    def __init__(self) -> None:
        from pylibsrtp._binding import ffi

        self.cdata = ffi.new("char[]", SCRATCH_BYTES)
        self.buf = ffi.buffer(self.cdata)
        self.view = memoryview(self.buf)


_scratch = _Scratch()


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
        self._srtp = _Srtp(dtls._tx_srtp)
        self._history: list[tuple[int, int, list[bytes]] | None] = [None] * RTP_HISTORY_PACKETS
        self._rtx_pt = sender._RTCRtpSender__rtx_payload_type
        self._rtx_ssrc = sender._rtx_ssrc
        self._gso = _gso_supported
        self._pair = None
        self._transport = None
        self._sock = None
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
        self._pair, self._transport, self._sock, self._addr = pair, transport, sock, pair.remote_addr

    def close(self) -> None:
        self.closed = True
        self._history = []

    def _check(self) -> None:
        if self.closed or self._dtls._state is not _DtlsState.CONNECTED:
            raise ConnectionError("DTLS transport is not connected")
        pair = self._connection._nominated.get(1)
        if pair is not self._pair:
            self._bind(pair)
        if self._transport.is_closing():
            raise ConnectionError("ICE socket closed")

    # -------------------------------------------------------------- sending

    def send_unit(self, payloads: list[bytes], pts: int, payload_bytes: int) -> bool:
        """Send one access unit's payloads. False if the viewer is congested (the caller
        drops to the next keyframe); ConnectionError when the peer is gone."""
        self._check()
        sender = self._sender
        if not sender._enabled:
            return True
        if self._transport.get_write_buffer_size() > CONGESTED_BYTES:
            return False
        now = time.time()
        ext = self._ext
        if self._abs_at >= 0:
            abs_time = int((now + NTP_DELTA) * 262144) & 0xFFFFFF  # 6.18 fixed point
            a = self._abs_at
            ext[a] = abs_time >> 16
            ext[a + 1] = (abs_time >> 8) & 0xFF
            ext[a + 2] = abs_time & 0xFF
        ext = bytes(ext)
        ts = (self._ts_origin + pts) & 0xFFFFFFFF
        seq = self._seq
        n = len(payloads)
        frame = (seq, ts, payloads)
        history = self._history
        scratch = _scratch
        buf = scratch.buf
        cdata = scratch.cdata
        srtp = self._srtp
        protect = srtp.lib.srtp_protect
        ctx = srtp.ctx
        lenp = srtp.lenp
        pack_into = self._head.pack_into
        b0, pt, ssrc, hlen = self._b0, self._pt, self._ssrc, self._hlen
        # datagrams laid out back to back; runs of equal size go out as one GSO send
        off = 0
        run_start = run_size = run_count = 0
        runs: list[tuple[int, int, int]] = []  # (offset, segment size, end offset)
        last = n - 1
        for i in range(n):
            payload = payloads[i]
            size = hlen + len(payload)
            if off + size + SRTP_TRAILER_MAX > SCRATCH_BYTES:  # a huge unit: send what we have
                if run_count:
                    runs.append((run_start, run_size, off))
                    run_count = 0
                self._flush(runs)
                runs = []
                off = 0
            pack_into(buf, off, b0, pt | 0x80 if i == last else pt, seq, ts, ssrc, ext)
            buf[off + hlen:off + size] = payload
            lenp[0] = size
            status = protect(ctx, cdata + off, lenp)
            if status:
                raise ConnectionError(f"srtp_protect failed ({status})")
            size = lenp[0]
            history[seq & HISTORY_MASK] = frame
            seq = (seq + 1) & 0xFFFF
            # a GSO run: segments of the run's size, the last one possibly shorter
            if run_count and size <= run_size and run_count < GSO_MAX_SEGMENTS \
                    and off + size - run_start <= GSO_MAX_BYTES:
                run_count += 1
                if size < run_size:
                    runs.append((run_start, run_size, off + size))
                    run_count = 0
            else:
                if run_count:
                    runs.append((run_start, run_size, off))
                run_start, run_size, run_count = off, size, 1
            off += size
        if run_count:
            runs.append((run_start, run_size, off))
        self._flush(runs)
        self._seq = seq
        self.packets += n
        # what aiortc's loop would have counted (stats, RTCP SR)
        sender._RTCRtpSender__ntp_timestamp = int((now + NTP_DELTA) * 4294967296)
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__octet_count += payload_bytes
        sender._RTCRtpSender__packet_count += n
        dtls = self._dtls
        dtls._RTCDtlsTransport__tx_bytes += off
        dtls._RTCDtlsTransport__tx_packets += n
        return True

    def _flush(self, runs: list[tuple[int, int, int]]) -> None:
        view = _scratch.view
        sock, addr, transport = self._sock, self._addr, self._transport
        if transport.get_write_buffer_size():
            self._queue(runs, view)  # keep order behind what asyncio already buffered
            return
        for k, (start, seg, end) in enumerate(runs):
            try:
                if end - start <= seg:
                    sock.sendto(view[start:end], addr)
                elif self._gso:
                    sock.sendmsg([view[start:end]], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", seg))],
                                 0, addr)
                else:
                    for o in range(start, end, seg):
                        sock.sendto(view[o:min(o + seg, end)], addr)
            except BlockingIOError:
                self._queue(runs[k:], view)
                return
            except OSError as exc:
                if end - start > seg and self._gso and exc.errno in (
                        errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE):
                    self._gso = False
                    stats["gso_disabled"] += 1
                    log.info("UDP GSO unavailable on this path (%s); sending datagrams one by one", exc)
                    self._queue(runs[k:], view)
                    return
                # as asyncio's transport does: a lost datagram, not a dead peer
                transport._protocol.error_received(exc)

    def _queue(self, runs: list[tuple[int, int, int]], view: memoryview) -> None:
        """One datagram at a time through asyncio's transport (it buffers if the socket is full)."""
        sendto, addr = self._transport.sendto, self._addr
        for start, seg, end in runs:
            for o in range(start, end, seg):
                sendto(bytes(view[o:min(o + seg, end)]), addr)

    # -------------------------------------------------------------- RTCP answers

    def retransmit(self, seq: int) -> None:
        """Answer a NACK for ``seq`` from the history (RTX if negotiated)."""
        if self.closed:
            return
        frame = self._history[seq & HISTORY_MASK]
        if frame is None:
            return
        first, ts, payloads = frame
        index = (seq - first) & 0xFFFF
        if index >= len(payloads):
            return
        try:
            self._check()
        except ConnectionError:
            return
        payload = payloads[index]
        marker = 0x80 if index == len(payloads) - 1 else 0
        ext = self._ext
        if self._abs_at >= 0:
            abs_time = int((time.time() + NTP_DELTA) * 262144) & 0xFFFFFF
            a = self._abs_at
            ext[a], ext[a + 1], ext[a + 2] = abs_time >> 16, (abs_time >> 8) & 0xFF, abs_time & 0xFF
        sender = self._sender
        if self._rtx_pt is not None:
            rtx_seq = sender._RTCRtpSender__rtx_sequence_number
            sender._RTCRtpSender__rtx_sequence_number = (rtx_seq + 1) & 0xFFFF
            head = self._head.pack(self._b0, self._rtx_pt | marker, rtx_seq, ts, self._rtx_ssrc, bytes(ext))
            packet = head + struct.pack("!H", seq) + payload
        else:
            packet = self._head.pack(self._b0, self._pt | marker, seq, ts, self._ssrc, bytes(ext)) + payload
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
