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
# screen within about 3 s, and connecting plus the first keyframe take about 1 s of that.
# A refused or timed-out connect every 2 s costs the camera next to nothing.
NEEDED_MAX_SECONDS = 2.0


def backoff_delay(failures: int, *, needed: bool = False) -> float:
    """Seconds to wait before reconnect attempt number ``failures`` (0-based)."""
    delay = float(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)])
    return min(delay, NEEDED_MAX_SECONDS) if needed else delay
