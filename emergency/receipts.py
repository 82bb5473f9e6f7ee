"""Replay protection: an event id from an origin is accepted once, on every node and
across restarts (a panic button's event, a TOTP time step)."""

from __future__ import annotations

from emergency.clock import Clock
from emergency.store import ReceiptRepo


class Receipts:
    def __init__(self, store: ReceiptRepo, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def first_time(self, origin: str, event_id: str) -> bool:
        """Remembers (origin, event id); False when it was received before: a replay."""
        return self._store.remember_receipt(origin, event_id, self._clock.now())
