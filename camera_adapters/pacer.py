"""A token bucket that spreads a viewer's bursts (keyframes, a restart from the GOP cache)
over time, so the burst does not itself overflow a slow link's queue and cause the loss
it then has to repair.

The rate follows the stream: :data:`PACE_FACTOR` times what this viewer was sent over the
last :data:`WINDOW` seconds (WebRTC's pacer uses 2.5x the target bitrate too), never below
:data:`FLOOR_BPS`. A unit that fits the bucket leaves at once, in one call into C; one
that does not is sent packet by packet as the bucket refills.
"""

from __future__ import annotations

from collections import deque

PACE_FACTOR = 2.5
FLOOR_BPS = 600_000
WINDOW = 2.0
DEPTH_BYTES = 2500  # about two full packets leave back to back


class Pacer:
    def __init__(self, now: float, *, factor: float = PACE_FACTOR, floor_bps: int = FLOOR_BPS) -> None:
        self._factor = factor
        self._floor = floor_bps / 8
        self._tokens = float(DEPTH_BYTES)
        self._at = now
        self._sent: deque[tuple[float, int]] = deque()
        self._sum = 0

    def rate(self) -> float:
        """Bytes per second the bucket refills at."""
        return max(self._floor, self._factor * self._sum / WINDOW)

    def _refill(self, now: float) -> None:
        self._tokens = min(float(DEPTH_BYTES), self._tokens + (now - self._at) * self.rate())
        self._at = now
        sent = self._sent
        while sent and now - sent[0][0] > WINDOW:
            self._sum -= sent.popleft()[1]

    def record(self, now: float, nbytes: int) -> None:
        """``nbytes`` of media handed to this viewer (paced or not): the rate follows it."""
        self._sent.append((now, nbytes))
        self._sum += nbytes

    def take(self, now: float, nbytes: int) -> bool:
        """Whether ``nbytes`` may leave now (and if so they are spent)."""
        self._refill(now)
        if self._tokens < nbytes:
            return False
        self._tokens -= nbytes
        return True

    def wait(self, now: float, nbytes: int) -> float:
        """Seconds until ``nbytes`` may leave."""
        self._refill(now)
        return max(0.0, (nbytes - self._tokens) / self.rate())
