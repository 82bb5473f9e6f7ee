"""How long a source waits before reconnecting to a camera that went away.

The wait depends on whether anyone needs the stream (a viewer, or a preload for a live
grant): an officer looking at a frozen picture is exactly who the camera comes back for,
while a stream nobody needs may back off far enough not to hammer a dead camera. The
hub tells its source which case applies (``Source.set_needed``); a source that becomes
needed in the middle of a long wait reconnects at once (``Source.wait_to_retry``).
"""

from __future__ import annotations

# Nobody needs the stream: a few quick retries ride out a blip, then the wait grows to a
# minute so a camera that is gone for good is not hammered and its failures not logged
# every second. Indexed by consecutive failed attempts; the last entry repeats.
BACKOFF_SECONDS = (1, 1, 1, 1, 1, 5, 10, 60)
# Someone watches or a live grant preloads the stream: a camera that returns must be on
# screen within 3 s (issue 11 allows at most 2 s of waiting), and opening the stream takes
# over 1 s of that (rtsp.py probes for 1 s) before the first keyframe; a camera may return
# just after a failed attempt, so the whole wait must fit in what is left. A refused or
# timed-out connect a second costs the camera next to nothing.
NEEDED_MAX_SECONDS = 1.0
# A needed camera that stays down fails every second; the same failure is logged again
# only every this many attempts, so an outage does not flood the log.
REPEAT_LOG_EVERY = 60


def backoff_delay(failures: int, *, needed: bool = False) -> float:
    """Seconds to wait before reconnect attempt number ``failures`` (0-based)."""
    delay = float(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)])
    return min(delay, NEEDED_MAX_SECONDS) if needed else delay


class RepeatedFailures:
    """Which reconnect failures to log: the first of a run of identical ones, then every
    ``REPEAT_LOG_EVERY``-th (``repeats`` counts the identical ones since the first)."""

    def __init__(self) -> None:
        self._last = ""
        self.repeats = 0

    def worth_logging(self, error: str) -> bool:
        self.repeats = self.repeats + 1 if error == self._last else 0
        self._last = error
        return self.repeats % REPEAT_LOG_EVERY == 0

    def reset(self) -> None:
        """Video flowed again: the next failure is news."""
        self._last, self.repeats = "", 0

    def suffix(self) -> str:
        return f" ({self.repeats} more times)" if self.repeats else ""
