"""Trickle ICE for a WHEP session: the viewer's late candidates, sent as an SDP fragment
(``application/trickle-ice-sdpfrag``, RFC 8840) in a PATCH, join the running ICE agent.

The entity-tag of a session names its ICE session: both sides' ``ice-ufrag``, so it changes
exactly when ICE restarts. aiortc 1.16 cannot restart ICE; a fragment with new credentials
is refused (the viewer starts a new session with POST, which is as fast: no trickle, one
round trip). A viewer may add at most ``MAX_REMOTE_CANDIDATES`` candidates: each one makes
the gateway send connectivity checks to an address the viewer chose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.sdp import candidate_from_sdp

MAX_FRAGMENT_BYTES = 16 * 1024
MAX_REMOTE_CANDIDATES = 32


class TrickleError(ValueError):
    """The fragment cannot be applied; ``status`` is the HTTP answer (400, 422)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


@dataclass
class Fragment:
    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[str] = field(default_factory=list)  # "candidate:..." attribute values
    end: bool = False


def parse_fragment(body: bytes) -> Fragment:
    """The RFC 8840 fragment: session/media ``a=ice-ufrag``, ``a=ice-pwd``, ``a=candidate``,
    ``a=end-of-candidates`` (``m=`` and ``a=mid`` lines are accepted; one bundle only)."""
    if len(body) > MAX_FRAGMENT_BYTES:
        raise TrickleError(413, "too_large", f"the SDP fragment is larger than {MAX_FRAGMENT_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TrickleError(400, "bad_sdpfrag", "the SDP fragment is not UTF-8 text") from None
    frag = Fragment()
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("a=ice-ufrag:"):
            frag.ufrag = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:"):
            frag.pwd = line.split(":", 1)[1]
        elif line.startswith("a=candidate:"):
            frag.candidates.append(line[2:])
        elif line == "a=end-of-candidates":
            frag.end = True
        elif line.startswith(("m=", "a=mid:", "a=ice-options:", "a=group:")):
            continue
        else:
            raise TrickleError(400, "bad_sdpfrag", f"unexpected line in the SDP fragment: {line[:80]!r}")
    return frag


def ice_transport(pc: RTCPeerConnection) -> RTCIceTransport:
    """The bundle's one ICE transport (the video transceiver's; every section shares it)."""
    return pc.getTransceivers()[0].receiver.transport.transport


def _ufrag(description: RTCSessionDescription | None) -> str:
    sdp = description.sdp if description is not None else ""
    return next((line.split(":", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=ice-ufrag:")), "")


def remote_ufrag(pc: RTCPeerConnection) -> str:
    """The viewer's ``ice-ufrag`` from its offer (the ICE agent may not have started yet)."""
    return _ufrag(pc.remoteDescription)


def ice_etag(pc: RTCPeerConnection) -> str:
    """A strong entity-tag for the current ICE session of ``pc``: both sides' ufrags."""
    pair = f"{_ufrag(pc.localDescription)}:{remote_ufrag(pc)}".encode()
    return '"' + hashlib.sha256(pair).hexdigest()[:20] + '"'


async def add_candidates(pc: RTCPeerConnection, frag: Fragment) -> int:
    """Adds the fragment's candidates to the running ICE agent; returns how many."""
    transport = ice_transport(pc)
    connection = transport.iceGatherer._connection
    if frag.ufrag is not None and frag.ufrag != remote_ufrag(pc):
        raise TrickleError(
            422,
            "ice_restart_unsupported",
            "this gateway cannot restart ICE on a running session; end it (DELETE) and start a new one (POST)",
        )
    if frag.candidates and transport.iceGatherer._remote_candidates_end:
        raise TrickleError(422, "end_of_candidates", "the viewer already signalled end-of-candidates")
    if len(connection.remote_candidates) + len(frag.candidates) > MAX_REMOTE_CANDIDATES:
        raise TrickleError(422, "too_many_candidates", f"at most {MAX_REMOTE_CANDIDATES} candidates per session")
    try:
        parsed = [candidate_from_sdp(c.split(":", 1)[1]) for c in frag.candidates]
    except (ValueError, IndexError) as exc:
        raise TrickleError(400, "bad_sdpfrag", f"a candidate line cannot be read: {exc}") from None
    for candidate in parsed:
        candidate.sdpMid = pc.getTransceivers()[0].mid
        await transport.addRemoteCandidate(candidate)
    if frag.end:
        await transport.addRemoteCandidate(None)
    return len(parsed)
