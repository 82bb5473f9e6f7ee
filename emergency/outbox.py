"""The notification outbox: what must be told to whom, stored with the change that caused it.

A command that changes an emergency calls :meth:`Outbox.enqueue` inside its own
transaction, so the notification exists if and only if the change committed. A
deliverer (``gateway.notifier``) then takes :meth:`Outbox.due` rows, sends them, and
reports :meth:`Outbox.delivered` or :meth:`Outbox.failed`. Nothing is lost across a
restart: an undelivered row stays in the table until it is delivered or given up on.

Choices worth knowing:
- One row per (notification, subscriber), each with its own id. The id is the delivery
  id receivers deduplicate on: delivery is at-least-once (a crash between the receiver's
  2xx and :meth:`delivered` sends the row again after the restart).
- A subscriber gets its notifications in enqueue order: only its oldest undelivered row
  is ever due, so an all-clear never overtakes the activation it ends. A row that is
  given up on ("dead") stops blocking the ones behind it.
- Failures back off exponentially (``backoff_base`` doubling up to ``backoff_cap``),
  shortened by up to ``jitter`` (a fraction) drawn from an injectable ``rng``, so a
  receiver coming back is not hit by every sender at once. After ``max_attempts``
  attempts a row is marked dead; it stays in the table (:meth:`dead`) for operators.
- Payload values must be JSON: enums, datetimes and sets are converted the way the
  audit log converts them, and the stored form is what :meth:`due` returns.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from emergency.audit import AuditEvent, canonical_details
from emergency.clock import Clock
from emergency.ids import new_id
from emergency.store import OutboxRepo

TOPICS = frozenset(
    {
        AuditEvent.EMERGENCY_ACTIVATED,
        AuditEvent.EMERGENCY_ACTION_CHANGED,
        AuditEvent.EMERGENCY_EXTENDED,
        AuditEvent.EMERGENCY_ALL_CLEAR,
        AuditEvent.EMERGENCY_CANCELLED,
        AuditEvent.EMERGENCY_CLOSED,
    }
)
ALL_TOPICS = "*"
# Topics whose payload carries something secret (a guest pass link): only a subscriber
# that names the topic gets them, never one that takes ALL_TOPICS.
PRIVATE_TOPICS = frozenset({AuditEvent.GUEST_PASS_SENT})

DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_CAP = 300.0
DEFAULT_MAX_ATTEMPTS = 20
DEFAULT_JITTER = 0.2
MAX_ERROR_TEXT = 500


@dataclass(frozen=True)
class Notification:
    id: str
    topic: str
    payload: dict[str, Any]
    created: datetime
    attempts: int
    next_attempt: datetime
    delivered_at: datetime | None
    last_error: str | None
    subscriber: str
    dead_at: datetime | None = None

    @property
    def dead(self) -> bool:
        return self.dead_at is not None

    @property
    def pending(self) -> bool:
        return self.delivered_at is None and self.dead_at is None


class Outbox:
    def __init__(
        self,
        store: OutboxRepo,
        clock: Clock,
        subscribers: Callable[[str], Sequence[str]],
        *,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        jitter: float = DEFAULT_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError("backoff: need 0 < backoff_base <= backoff_cap")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self.store = store
        self._clock = clock
        self._subscribers = subscribers
        self._base = backoff_base
        self._cap = backoff_cap
        self._max_attempts = max_attempts
        self._jitter = jitter
        self._rng = rng or random.Random()

    @property
    def max_attempts(self) -> int:
        return self._max_attempts

    def enqueue(self, topic: str, payload: dict[str, Any]) -> list[Notification]:
        """One row per subscriber that wants ``topic``; none if nobody does.

        Runs inside the caller's transaction when there is one (the store's
        ``transaction()`` nests as a savepoint), so a rollback there discards these rows
        too; called on its own, the rows for all subscribers commit together."""
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        body = canonical_details(payload)
        now = self._clock.now()
        rows = [
            Notification(
                id=new_id(),
                topic=topic,
                payload=body,
                created=now,
                attempts=0,
                next_attempt=now,
                delivered_at=None,
                last_error=None,
                subscriber=subscriber,
            )
            for subscriber in dict.fromkeys(self._subscribers(topic))  # dedupe, keep order
        ]
        with self.store.transaction():
            for n in rows:
                self.store.insert_notification(n)
        return rows

    def due(self, limit: int = 100) -> list[Notification]:
        """Rows to attempt now: per subscriber the oldest pending one, if its time has come."""
        return self.store.due_notifications(self._clock.now(), max(0, int(limit)))

    def get(self, notification_id: str) -> Notification | None:
        return self.store.get_notification(notification_id)

    def delivered(self, notification_id: str) -> None:
        """Records a successful attempt. Repeating it (or reporting a dead row delivered
        after all) keeps the first delivery time."""
        with self.store.transaction():
            n = self._existing(notification_id)
            if n.delivered_at is not None:
                return
            self.store.update_notification(
                replace(
                    n,
                    attempts=n.attempts + 1,
                    delivered_at=self._clock.now(),
                    dead_at=None,
                )
            )

    def failed(self, notification_id: str, error: str) -> Notification:
        """Records a failed attempt and schedules the next one, or marks the row dead after
        ``max_attempts``. ``error`` is kept (shortened) for operators: never put secrets in it."""
        with self.store.transaction():
            n = self._existing(notification_id)
            if not n.pending:
                return n
            now = self._clock.now()
            attempts = n.attempts + 1
            text = str(error)[:MAX_ERROR_TEXT]
            if attempts >= self._max_attempts:
                updated = replace(n, attempts=attempts, last_error=text, dead_at=now, next_attempt=now)
            else:
                updated = replace(
                    n, attempts=attempts, last_error=text, next_attempt=now + timedelta(seconds=self.backoff(attempts))
                )
            self.store.update_notification(updated)
            return updated

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure: base, 2*base, 4*base, ... up to
        the cap, each shortened by up to ``jitter`` of itself."""
        delay: float = min(self._cap, self._base * 2.0 ** min(max(attempts, 1) - 1, 60))
        return delay * (1 - self._jitter * self._rng.random())

    def transaction(self) -> AbstractContextManager[None]:
        """The store's transaction, for a deliverer that records an attempt and its audit entry together."""
        return self.store.transaction()

    def count(self, state: str) -> int:
        """Rows that are ``pending``, ``delivered`` or ``dead``."""
        return self.store.count_notifications(state)

    def pending_count(self) -> int:
        return self.store.count_notifications("pending")

    def dead_count(self) -> int:
        return self.store.count_notifications("dead")

    def dead(self, limit: int = 100) -> list[Notification]:
        """Rows given up on, newest first."""
        return self.store.list_notifications("dead", limit=limit)

    def _existing(self, notification_id: str) -> Notification:
        n = self.store.get_notification(notification_id)
        if n is None:
            raise KeyError(notification_id)
        return n
