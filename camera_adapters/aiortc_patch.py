"""Every change Sightline makes to aiortc, and every read or write of aiortc's (aioice's,
pylibsrtp's, asyncio's) private state, in one module.

:func:`install` applies the changes, once, when the gateway starts (importing anything
changes nothing):

* H.264 RTP payloads at most :data:`~camera_adapters.rtp_mtu.RTP_PAYLOAD_MAX` bytes
  (``aiortc.codecs.h264.PACKET_MAX``; :mod:`camera_adapters.rtp_mtu` says why);
* the sender's H.264 encoder is :class:`~camera_adapters.sendpath.SharedH264Packer`
  (each access unit packetised once per camera, not once per viewer) and its NACK history
  holds :data:`~camera_adapters.sendpath.RTP_HISTORY_PACKETS` packets
  (``aiortc.rtcrtpsender.get_encoder`` and ``RTP_HISTORY_SIZE``);
* H.264 Main and High profiles (:data:`EXTRA_H264_PROFILES`) in aiortc's codec table beside
  its constrained baseline, so an answer can announce a passthrough camera's real profile
  (``aiortc.codecs.CODECS``; gateway/media/h264_profiles.py chooses among them);
* only when :func:`choose_sender` allows it, ``RTCRtpSender._run_rtp``, ``_retransmit``
  and ``_send_keyframe`` are wrapped so that a PacketTrack's sender on a plain UDP pair
  is the lean C send loop (:mod:`camera_adapters.fastsend`, ``camera_adapters/_rtpsend.c``)
  instead of aiortc's per-packet coroutines. It reads and feeds aiortc's private fields
  through :class:`SenderLink`, which knows their names in :data:`SUPPORTED_AIORTC`.

Anything else (another aiortc, the C extension not built, ``SIGHTLINE_FASTSEND=0``) runs
aiortc's own sender, and :func:`install` returns a :class:`SenderChoice` whose message
says which sender runs and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import aioice
import aiortc
import aiortc.codecs.h264 as _h264
import aiortc.rtcrtpsender as _rtcrtpsender
import pylibsrtp
from aiortc.codecs import CODECS
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender

from .rtp_mtu import RTP_PAYLOAD_MAX

if TYPE_CHECKING:
    from aioice.ice import CandidatePair, Connection

    from .fastsend import LeanSender

log = logging.getLogger(__name__)

# The one aiortc release the lean sender's field names were checked against; pyproject.toml
# pins it. aioice and pylibsrtp: the release series checked (pinned with ~=).
SUPPORTED_AIORTC = "1.16.0"
SUPPORTED_SERIES = {"aioice": "0.13", "pylibsrtp": "1.0"}

MODE_ENV = "SIGHTLINE_FASTSEND"  # "0"/"off": aiortc's own sender; "force": lean on any version
_OFF = ("0", "off", "false", "no")

LEAN_SENDER = "lean C send loop (camera_adapters/_rtpsend.c)"
STOCK_SENDER = "aiortc's own sender"
# Main and High at level 3.1; the answer rewrites the level to the stream's own.
EXTRA_H264_PROFILES = ("4d001f", "64001f")
NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)

_STOCK_PACKET_MAX: int = _h264.PACKET_MAX
_STOCK_GET_ENCODER = getattr(_rtcrtpsender, "get_encoder")  # noqa: B009  (not exported)
_STOCK_HISTORY_SIZE: int = getattr(_rtcrtpsender, "RTP_HISTORY_SIZE")  # noqa: B009
_STOCK_VIDEO_CODECS = list(CODECS["video"])
_STOCK_RUN_RTP = RTCRtpSender._run_rtp
_STOCK_RETRANSMIT = RTCRtpSender._retransmit
_STOCK_SEND_KEYFRAME = RTCRtpSender._send_keyframe


def _selector_datagram_transport() -> type | None:
    transport: type | None = getattr(asyncio.selector_events, "_SelectorDatagramTransport", None)
    return transport


_SELECTOR_DGRAM = _selector_datagram_transport()


# ------------------------------------------------------------------ which sender


@dataclass(frozen=True)
class SenderChoice:
    """Which RTP sender the gateway runs, and the start-up line that says why."""

    lean: bool
    message: str

    @property
    def name(self) -> str:
        return "lean" if self.lean else "aiortc"


def installed_versions() -> dict[str, str]:
    return {"aiortc": aiortc.__version__, "aioice": aioice.__version__, "pylibsrtp": pylibsrtp.__version__}


def version_problems(versions: Mapping[str, str]) -> list[str]:
    """How the installed versions differ from the supported ones (empty if they do not)."""
    problems = []
    if versions["aiortc"] != SUPPORTED_AIORTC:
        problems.append(f"aiortc {versions['aiortc']} is installed, the lean sender supports {SUPPORTED_AIORTC}")
    for name, series in SUPPORTED_SERIES.items():
        found = versions[name]
        if found != series and not found.startswith(series + "."):
            problems.append(f"{name} {found} is installed, the lean sender supports {series}.x")
    return problems


def choose_sender(
    versions: Mapping[str, str], extension_built: bool, mode: str = "1", selector_transport: bool = True
) -> SenderChoice:
    """The lean sender if everything it relies on is here, else aiortc's own, with why."""
    mode = mode.strip().lower()
    if mode in _OFF:
        return SenderChoice(False, f"RTP sender: {STOCK_SENDER}, because {MODE_ENV}={mode} turns the lean sender off")
    reasons = []
    if not extension_built:
        reasons.append(
            "the C extension camera_adapters/_rtpsend is not built: run pip install -e . with a C compiler installed"
        )
    problems = version_problems(versions)
    if problems and mode != "force":
        reasons += problems
    if not selector_transport:
        reasons.append("this Python's asyncio has no selector datagram transport")
    if reasons:
        return SenderChoice(False, f"RTP sender: {STOCK_SENDER}, because " + "; ".join(reasons))
    message = f"RTP sender: {LEAN_SENDER} on aiortc {versions['aiortc']}"
    if problems:
        message += f" ({MODE_ENV}=force although " + "; ".join(problems) + ")"
    return SenderChoice(True, message)


# ------------------------------------------------------------------ install

_choice: SenderChoice | None = None
_make_lean: Callable[[RTCRtpSender, RTCRtpCodecParameters], LeanSender | None] | None = None
_lean_of: weakref.WeakKeyDictionary[RTCRtpSender, LeanSender] = weakref.WeakKeyDictionary()


def install() -> SenderChoice:
    """Apply Sightline's changes to aiortc (once; later calls return the first choice).
    The caller says which sender runs: the gateway logs ``message`` at start."""
    global _choice, _make_lean
    if _choice is not None:
        return _choice
    from . import fastsend
    from .sendpath import RTP_HISTORY_PACKETS, get_encoder

    _h264.PACKET_MAX = RTP_PAYLOAD_MAX
    _register_h264_profiles()
    setattr(_rtcrtpsender, "get_encoder", get_encoder)  # noqa: B010  (not exported)
    setattr(_rtcrtpsender, "RTP_HISTORY_SIZE", RTP_HISTORY_PACKETS)  # noqa: B010
    choice = choose_sender(
        installed_versions(), fastsend.extension_built(), os.environ.get(MODE_ENV, "1"), _SELECTOR_DGRAM is not None
    )
    if choice.lean:
        _make_lean = fastsend.make_lean
        setattr(RTCRtpSender, "_run_rtp", _run_rtp)  # noqa: B010  (mypy: method-assign)
        setattr(RTCRtpSender, "_retransmit", _retransmit)  # noqa: B010
        setattr(RTCRtpSender, "_send_keyframe", _send_keyframe)  # noqa: B010
    _choice = choice
    return choice


def _register_h264_profiles() -> None:
    video = CODECS["video"]
    known = {str(c.parameters.get("profile-level-id", "")).lower() for c in video if c.mimeType == "video/H264"}
    base = next(c for c in video if c.mimeType == "video/H264")
    for pli in EXTRA_H264_PROFILES:
        if pli in known:
            continue
        payload_type = max(c.payloadType or 0 for c in video) + 1
        video += [
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90000,
                payloadType=payload_type,
                rtcpFeedback=list(base.rtcpFeedback),
                parameters={"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": pli},
            ),
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=payload_type + 1, parameters={"apt": payload_type}
            ),
        ]


def uninstall() -> None:
    """aiortc as shipped again (tests; A/B benchmarks). Senders already running keep theirs."""
    global _choice, _make_lean
    _h264.PACKET_MAX = _STOCK_PACKET_MAX
    CODECS["video"][:] = _STOCK_VIDEO_CODECS
    setattr(_rtcrtpsender, "get_encoder", _STOCK_GET_ENCODER)  # noqa: B010
    setattr(_rtcrtpsender, "RTP_HISTORY_SIZE", _STOCK_HISTORY_SIZE)  # noqa: B010
    setattr(RTCRtpSender, "_run_rtp", _STOCK_RUN_RTP)  # noqa: B010
    setattr(RTCRtpSender, "_retransmit", _STOCK_RETRANSMIT)  # noqa: B010
    setattr(RTCRtpSender, "_send_keyframe", _STOCK_SEND_KEYFRAME)  # noqa: B010
    _choice = None
    _make_lean = None


def lean_sender_of(sender: RTCRtpSender) -> LeanSender | None:
    """The lean sender sending for ``sender`` now, if any."""
    return _lean_of.get(sender)


# ------------------------------------------------------------------ the wrapped methods


async def _run_rtp(self: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
    run_lean: Callable[[LeanSender], Awaitable[None]] | None = getattr(self.track, "run_lean", None)
    lean = _make_lean(self, codec) if run_lean is not None and _make_lean is not None else None
    if run_lean is None or lean is None:
        await _STOCK_RUN_RTP(self, codec)
        return
    _lean_of[self] = lean
    self._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
    try:
        await run_lean(lean)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        log.exception("lean RTP sender failed")
    finally:
        lean.close()
        _lean_of.pop(self, None)
        # as aiortc's loop does on exit: stop the track, drop it
        track = self._RTCRtpSender__track  # type: ignore[attr-defined]
        if track is not None:
            track.stop()
            self._RTCRtpSender__track = None  # type: ignore[attr-defined]
        self._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]


async def _retransmit(self: RTCRtpSender, sequence_number: int) -> None:
    lean = _lean_of.get(self)
    if lean is None:
        await _STOCK_RETRANSMIT(self, sequence_number)
        return
    lean.retransmit(sequence_number)


def _send_keyframe(self: RTCRtpSender) -> None:
    lean = _lean_of.get(self)
    if lean is not None:
        lean.plis += 1
    _STOCK_SEND_KEYFRAME(self)


# ------------------------------------------------------------------ private state, typed


def sent_sample(sender: RTCRtpSender) -> tuple[int, int]:
    """(RTP timestamp, NTP timestamp) of the last unit ``sender`` sent, as its RTCP sender
    report carries them; the NTP timestamp is 0 before the first."""
    return (
        int(getattr(sender, "_RTCRtpSender__rtp_timestamp", 0)),
        int(getattr(sender, "_RTCRtpSender__ntp_timestamp", 0)),
    )


def srtp_protect_addresses(session: pylibsrtp.Session) -> tuple[int, int]:
    """Addresses of libsrtp's ``srtp_protect`` and of ``session``'s context (pylibsrtp 1.0
    internals), for the C loop to protect packets in place without a Python call each."""
    from pylibsrtp._binding import ffi, lib

    protect = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    return protect, int(ffi.cast("uintptr_t", session._srtp[0]))


class UdpTransport(Protocol):
    """What the lean sender uses of asyncio's selector datagram transport."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...


def plain_udp_socket(pair: CandidatePair) -> tuple[UdpTransport, int]:
    """The asyncio transport and socket fd under an ICE pair; ConnectionError unless it is a
    plain UDP socket of ours (a TURN relay, for one, is not)."""
    transport = pair.protocol.transport
    sock = getattr(transport, "_sock", None) if type(transport) is _SELECTOR_DGRAM else None
    if sock is None:
        raise ConnectionError("nominated pair is not a plain UDP socket")
    return cast(UdpTransport, transport), int(sock.fileno())


def report_send_error(transport: UdpTransport, err: int) -> None:
    """As asyncio's transport does for a failed ``sendto``: a lost datagram, not a dead peer."""
    transport._protocol.error_received(OSError(err, os.strerror(err)))  # type: ignore[attr-defined]


class SenderLink:
    """One aiortc sender's private state as the lean sender needs it: what to stamp on
    packets, where to send them, and the counters aiortc's own loop would have kept
    (``getStats`` and RTCP sender reports read them)."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        dtls = sender.transport
        if dtls._state is not DtlsState.CONNECTED or dtls._tx_srtp is None:
            raise ConnectionError("DTLS not connected")
        self._sender = sender
        self._dtls: RTCDtlsTransport = dtls
        self._connection: Connection = dtls.transport._connection
        self.payload_type = codec.payloadType
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.rtx_payload_type: int | None = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
        self.mid_id: int | None = ids.mid
        self.abs_send_time_id: int | None = ids.abs_send_time
        self.mid: str | None = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self.srtp_protect, self.srtp_context = srtp_protect_addresses(dtls._tx_srtp)

    def enabled(self) -> bool:
        return bool(self._sender._enabled)

    def connected_pair(self) -> CandidatePair | None:
        """The nominated ICE pair; ConnectionError once DTLS is no longer connected."""
        if self._dtls._state is not DtlsState.CONNECTED:
            raise ConnectionError("DTLS transport is not connected")
        return self._connection._nominated.get(1)

    def protect(self, packet: bytes) -> bytes:
        return bytes(self._dtls._tx_srtp.protect(packet))

    def count_sent(self, now: float, rtp_timestamp: int, octets: int, packets: int, wire: int) -> None:
        sender, dtls = self._sender, self._dtls
        sender._RTCRtpSender__ntp_timestamp = int((now + NTP_DELTA) * 4294967296)  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_bytes += wire  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += packets  # type: ignore[attr-defined]

    def count_retransmit(self, wire: int) -> None:
        dtls = self._dtls
        dtls._RTCDtlsTransport__tx_bytes += wire  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += 1  # type: ignore[attr-defined]

    def next_rtx_sequence_number(self) -> int:
        sender = self._sender
        seq: int = sender._RTCRtpSender__rtx_sequence_number  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtx_sequence_number = (seq + 1) & 0xFFFF  # type: ignore[attr-defined]
        return seq


# aiortc's H.264 packetiser, whose steps are private static methods of H264Encoder


def h264_split_nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B access unit, without start codes."""
    return _h264.H264Encoder._split_bitstream(data)


def h264_packetize(nal_units: Iterable[bytes]) -> list[bytes]:
    """aiortc's RTP payloads (single NAL, STAP-A, FU-A) for these NAL units."""
    return _h264.H264Encoder._packetize(nal_units)


def h264_stap_a(nal: bytes, rest: Iterator[bytes]) -> tuple[bytes, bytes | None]:
    """``nal`` and as many of ``rest`` as fit one STAP-A payload (or ``nal`` alone), and
    the next NAL unit not taken (None at the end)."""
    packed, following = _h264.H264Encoder._packetize_stap_a(nal, rest)
    return packed, following
