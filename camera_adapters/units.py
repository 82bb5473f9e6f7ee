"""The unit of media that flows from a source to a hub."""

from __future__ import annotations

from dataclasses import dataclass

VIDEO_CLOCK = 90_000


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One H.264 access unit in Annex-B form, SPS/PPS in front of every IDR.

    ``pts`` is on the source's own 90 kHz clock; ``new_session`` marks the first unit
    after a (re)connect, where that clock may have jumped and the hub must rebase it.
    """

    data: bytes
    pts: int
    keyframe: bool
    new_session: bool = False
