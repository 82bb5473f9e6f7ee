"""The WHEP answer announces the camera's own H.264 profile-level-id."""

from __future__ import annotations

import re

from aiortc import RTCPeerConnection, RTCRtpSender, VideoStreamTrack

from gateway.media.h264_profiles import profile_of
from gateway.media.webrtc import answer_offer


async def offer(profiles: tuple[str, ...] | None = None) -> str:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    if profiles:
        transceiver.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType == "video/H264" and c.parameters.get("profile-level-id") in profiles
            ]
        )
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def announced(answer: str) -> set[str]:
    return set(re.findall(r"a=fmtp:\d+ [^\r\n]*profile-level-id=([0-9a-f]{6})", answer))


async def test_high_profile_stream_is_announced_as_high() -> None:
    pc, answer = await answer_offer(await offer(), VideoStreamTrack(), "640028")
    await pc.close()
    assert announced(answer) == {"640028"}


async def test_constrained_baseline_keeps_the_exact_level() -> None:
    pc, answer = await answer_offer(await offer(), VideoStreamTrack(), "42c01e")
    await pc.close()
    assert announced(answer) == {"42c01e"}
    assert str(profile_of("42c01e")).endswith("CONSTRAINED_BASELINE")


async def test_viewer_without_high_falls_back_to_baseline() -> None:
    pc, answer = await answer_offer(await offer(("42e01f",)), VideoStreamTrack(), "640028")
    await pc.close()
    assert announced(answer) == {"42e01f"}
