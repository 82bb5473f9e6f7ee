"""Answering with the camera's own H.264 profile.

Passthrough sends the camera's bitstream as is, so the answer must announce what the
stream really is: a strict decoder may refuse a High-profile stream announced as
baseline. aiortc negotiates only constrained baseline (42001f, 42e01f), so Main and High
are registered with it (camera_adapters.aiortc_patch.install); the answer prefers the stream's profile when the offer
accepts it, and its fmtp carries the stream's exact profile-level-id (aiortc picks the
first local codec of a profile, so the level is stated by rewriting the answer text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.sdp import H264Profile, SessionDescription, parse_h264_profile_level_id

H264 = "video/H264"


def profile_of(profile_level_id: str) -> H264Profile | None:
    try:
        return parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        return None


def _pli(params: Mapping[str, object]) -> str:
    return str(params.get("profile-level-id", "42e01f")).lower()


def offered_profiles(offer_sdp: str) -> set[H264Profile]:
    """H.264 profiles (packetization-mode 1) the offer's video sections accept."""
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception:  # malformed offers are reported by setRemoteDescription
        return set()
    profiles = set()
    for media in description.media:
        if media.kind != "video":
            continue
        for codec in media.rtp.codecs:
            if codec.mimeType.lower() == "video/h264" and str(codec.parameters.get("packetization-mode")) == "1":
                profile = profile_of(_pli(codec.parameters))
                if profile is not None:
                    profiles.add(profile)
    return profiles


def codec_preferences(offer_sdp: str, stream_pli: str | None) -> list[RTCRtpCodecCapability]:
    """H.264 capabilities of the stream's profile when the offer accepts it, else baseline."""
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == H264]
    wanted = profile_of(stream_pli) if stream_pli else None
    if wanted is not None and wanted in offered_profiles(offer_sdp):
        return [c for c in h264 if profile_of(_pli(c.parameters)) == wanted]
    return [c for c in h264 if _pli(c.parameters) in ("42001f", "42e01f")]


def announce_profile(answer_sdp: str, stream_pli: str | None) -> str:
    """The answer with the stream's exact profile-level-id on H.264 fmtp lines of the
    same profile (level and constraint flags then match the bitstream)."""
    wanted = profile_of(stream_pli) if stream_pli else None
    if wanted is None:
        return answer_sdp

    def fix(match: re.Match[str]) -> str:
        return match.group(1) + (stream_pli or "") if profile_of(match.group(2)) == wanted else match.group(0)

    return re.sub(r"(a=fmtp:\d+ [^\r\n]*profile-level-id=)([0-9a-fA-F]{6})", fix, answer_sdp)
