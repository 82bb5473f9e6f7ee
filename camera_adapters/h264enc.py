"""libx264 settings shared by the synthetic camera and the per-hub transcode.

Constrained baseline, no B-frames, zero-latency, fixed GOP and SPS/PPS repeated before
every IDR: what WebRTC receivers decode everywhere and what a joining viewer needs.
"""

from __future__ import annotations

from fractions import Fraction

import av

from .units import VIDEO_CLOCK

TIME_BASE = Fraction(1, VIDEO_CLOCK)


class H264Encoder:
    """Encodes frames to Annex-B access units; output pts are on the 90 kHz clock."""

    def __init__(self, width: int, height: int, fps: int, keyint_seconds: float = 1.0) -> None:
        keyint = max(1, round(fps * keyint_seconds))
        self.width = width
        self.height = height
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(fps)
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": (f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:repeat-headers=1"),
        }
        self._ctx = ctx

    def encode(self, frame: av.VideoFrame, pts: int) -> list[tuple[bytes, int, bool]]:
        """(bytes, pts, keyframe) for each access unit the encoder releases."""
        if frame.format.name != "yuv420p" or frame.width != self.width or frame.height != self.height:
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        # x264 stamps every packet; the frame's pts stands in if a build ever does not
        return [(bytes(p), pts if p.pts is None else p.pts, bool(p.is_keyframe)) for p in self._ctx.encode(frame)]
