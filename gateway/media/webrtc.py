"""Answering a WHEP offer with an aiortc peer that sends one camera track as H.264.

The gateway never decodes or encodes per viewer: the track yields encoded packets and the
answer is restricted to H.264 so the browser receives the camera's own bitstream.
"""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from gateway.media.h264_profiles import announce_profile, codec_preferences

MAX_OFFER_BYTES = 64 * 1024


class OfferError(ValueError):
    """The offer cannot be answered; the message tells the client what to send instead."""


def check_offer_text(body: bytes) -> str:
    if len(body) > MAX_OFFER_BYTES:
        raise OfferError(f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError("the SDP offer is not UTF-8 text") from None
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the body is not an SDP offer (it must start with 'v=0')")
    if "m=video" not in sdp:
        raise OfferError("the offer has no video section; add a recvonly video transceiver")
    return sdp


async def answer_offer(
    sdp: str,
    track: MediaStreamTrack,
    profile_level_id: str | None = None,
    ice_servers: list[RTCIceServer] | None = None,
) -> tuple[RTCPeerConnection, str]:
    """Returns the peer and its complete (non-trickle) answer. Closes the peer on failure.

    ``profile_level_id`` is the stream's own (from its SPS), announced when the offer allows;
    ``ice_servers`` are STUN servers to gather with (none: host candidates only)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or []))
    try:
        # aiortc applies codec preferences while matching the offer, so the sending
        # transceiver must exist, restricted to H.264, before the offer is set.
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(sdp, profile_level_id))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises many types for malformed or codec-less SDP
            raise OfferError(f"the SDP offer could not be used (it must offer H.264 video): {exc}") from None
        if transceiver.mid is None:
            raise OfferError("the offer has no video section; add a recvonly video transceiver")
        try:
            answer = await pc.createAnswer()
        except Exception as exc:
            raise OfferError(f"the offer cannot be answered with H.264 video: {exc}") from None
        if answer is None or "H264" not in answer.sdp:
            raise OfferError("the offer must accept H.264 video (packetization-mode=1)")
        await pc.setLocalDescription(answer)
        return pc, announce_profile(pc.localDescription.sdp, profile_level_id)
    except BaseException:
        await pc.close()
        raise
