"""Which profile feeds a focused view (main) and which feeds grids (sub)."""

from __future__ import annotations

from .model import MediaProfile


def _is_h264(profile: MediaProfile) -> bool:
    return (profile.encoding or "").upper().replace(".", "") == "H264"


def choose_streams(profiles: tuple[MediaProfile, ...]) -> tuple[MediaProfile, MediaProfile | None]:
    """Pick (main, sub) profiles.

    Main: the highest-resolution H.264 profile, else the highest-resolution one, because
    H.264 is relayed untouched while anything else costs a transcode. Sub: the
    lowest-resolution of the remaining profiles (H.264 first, for the same reason), or
    None when there is only one. Profiles without a video encoder (audio or metadata
    only, seen on several vendors) are used only if nothing else exists. Ties keep the
    camera's order, which usually lists its primary stream first.
    """
    if not profiles:
        raise ValueError("camera reported no media profiles")
    video = tuple(p for p in profiles if p.encoding is not None) or profiles
    main = max(video, key=lambda p: (_is_h264(p), p.pixels, p.fps or 0.0, -video.index(p)))
    rest = [p for p in video if p is not main]
    if not rest:
        return main, None
    sub = min(rest, key=lambda p: (not _is_h264(p), p.pixels or 1 << 62, rest.index(p)))
    return main, sub
