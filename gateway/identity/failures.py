"""Authentication failures summarised per source and minute, so garbage cannot flood the audit.

A client sending bad, expired or forged tokens (or made-up session cookies, wrong OAuth
client secrets, or sign-ins refused by the rate limit) would otherwise add one audit entry
per request, hundreds a second, burying what matters and filling the disk. Instead:

- the first failure of a source (the client address, gateway/identity/proxies.py) and
  kind (bearer token, session cookie, client credentials, refused sign-in) in a calendar
  minute is written at once, in full, as before;
- the rest of that minute are only counted (with up to ten reasons) and written as one
  ``auth.failures`` entry with the count when the minute has closed: by the next failure
  after it, by the app's loop every few seconds (gateway/app.py), and at stop, so
  nothing is lost;
- past ``max_sources`` sources in one minute (an attacker with many addresses), further
  new sources share one bucket without an address, so memory and entries stay bounded.

The metrics still count every failure. The summary is this node's own: several nodes
each write theirs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import Request

from emergency.audit import AuditEvent
from gateway.identity.proxies import client_address

if TYPE_CHECKING:
    from emergency.audit import AuditLog

MINUTE = 60
MAX_SOURCES = 1000
MAX_REASONS = 10
OTHER_SOURCES = "other sources"


@dataclass
class _Bucket:
    minute: int
    source: str | None
    kind: str
    first: float
    last: float = 0.0
    count: int = 0  # failures after the one written in full
    reasons: Counter[str] = field(default_factory=Counter)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class FailureSummary:
    def __init__(
        self, audit: AuditLog, *, now: Callable[[], float] = time.time, max_sources: int = MAX_SOURCES
    ) -> None:
        self._audit = audit
        self._now = now
        self.max_sources = max_sources
        self._buckets: dict[tuple[int, str | None, str], _Bucket] = {}
        self._lock = threading.Lock()

    def first(self, source: str | None, *, kind: str, reason: str) -> bool:
        """Count one failure; True when the caller should write it in full (the first of
        its source, kind and minute), False when it is only counted for the summary."""
        now = self._now()
        minute = int(now // MINUTE)
        closed = self._take_closed(minute)
        with self._lock:
            key = (minute, source, kind)
            bucket = self._buckets.get(key)
            if bucket is None and sum(1 for k in self._buckets if k[0] == minute) >= self.max_sources:
                key = (minute, OTHER_SOURCES, kind)
                bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = _Bucket(minute, key[1], kind, now)
                full = True
            else:
                bucket.count += 1
                bucket.last = now
                if len(bucket.reasons) < MAX_REASONS or reason in bucket.reasons:
                    bucket.reasons[reason[:200]] += 1
                full = False
        self._write(closed)
        return full

    def flush(self, *, everything: bool = False) -> int:
        """Write the summaries of the minutes that have closed (all of them when
        ``everything``, at stop); returns how many entries were written."""
        return self._write(self._take_closed(None if everything else int(self._now() // MINUTE)))

    def _take_closed(self, minute: int | None) -> list[_Bucket]:
        with self._lock:
            keys = [k for k in self._buckets if minute is None or k[0] < minute]
            return [self._buckets.pop(k) for k in keys]

    def _write(self, buckets: list[_Bucket]) -> int:
        written = 0
        for b in buckets:
            if not b.count:
                continue
            address = None if b.source == OTHER_SOURCES else b.source
            self._audit.append(
                AuditEvent.AUTH_FAILURES,
                actor_id="unknown",
                object=f"source:{b.source}" if b.source else "source:unknown",
                outcome="denied",
                source=address,
                reason=f"{b.count} more {b.kind} failures in the minute from {_iso(b.minute * MINUTE)}",
                details={
                    "count": b.count,
                    "kind": b.kind,
                    "address": b.source,
                    "minute": _iso(b.minute * MINUTE),
                    "first": _iso(b.first),
                    "last": _iso(b.last),
                    "reasons": dict(b.reasons.most_common(MAX_REASONS)),
                },
            )
            written += 1
        return written


def audit_bad_credential(request: Request, *, kind: str, reason: str) -> None:
    """A request with a bad credential: counted in the metrics every time, audited in full
    (``auth.failure``) the first time this minute for its source and kind, then summarised."""
    gw = request.app.state.gateway
    gw.metrics.auth_failures.inc()
    source = client_address(request)
    if failure_summary(request).first(source, kind=kind, reason=reason):
        gw.audit.append(
            AuditEvent.AUTH_FAILURE,
            actor_id="unknown",
            object=f"http:{request.method} {request.url.path}",
            outcome="denied",
            source=source,
            reason=reason,
        )


def failure_summary(request: Request) -> FailureSummary:
    """The app's summary (gateway/app.py makes it, flushes it every few seconds and at stop)."""
    summary: FailureSummary = request.app.state.auth_failures
    return summary
