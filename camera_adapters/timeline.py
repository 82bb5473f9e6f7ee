"""One monotonic 90 kHz timeline per hub, whatever the camera's clock does."""

from __future__ import annotations

from .units import VIDEO_CLOCK

MAX_JUMP = 5 * VIDEO_CLOCK


class PtsTimeline:
    """Rebases source pts so viewer tracks keep increasing timestamps across reconnects.

    A camera restarts its RTP clock on every session; the viewers' RTP streams must not.
    On a new session (or an implausible jump) the gap is taken from the wall clock, so
    the receiver's jitter buffer sees time pass as it really did.
    """

    def __init__(self) -> None:
        self._offset = 0
        self._last_out: int | None = None
        self._last_wall = 0.0

    def map(self, src_pts: int, new_session: bool, wall: float) -> int:
        if self._last_out is None:
            self._offset = -src_pts
        elif new_session or abs(src_pts + self._offset - self._last_out) > MAX_JUMP:
            gap = max(1, round((wall - self._last_wall) * VIDEO_CLOCK))
            self._offset = self._last_out + gap - src_pts
        out = src_pts + self._offset
        if self._last_out is not None and out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        self._last_wall = wall
        return out
