"""Honest viewing records after a crash: which view sessions a node is serving, and its
heartbeat, so that the next start of a node that was killed closes the sessions the crash
cut off instead of leaving them open-ended in the disclosure record.

While a node serves video it records each live session (``LiveView``) and, every
``HEARTBEAT_SECONDS``, that it is still alive. A clean stop closes every session with its
real reason and removes its row. A crash (``kill -9``, power loss) leaves the rows; the
next start of the same node finds them and appends ``view.ended`` for each, with the
reason ``CRASH_REASON`` and an end no later than the node's last heartbeat: the last time
the node is known to have been serving (the session may have ended earlier if the viewer
left, never later than the node was alive), so a span is never stretched past what the
record proves.

Kept in the database (revision 0002: ``live_views``, ``node_heartbeats``), not in a file
in the data dir, because:
- a session's row is written in the same transaction as its ``view.started`` entry and
  removed in the same transaction as its ``view.ended`` entry, so every session the log
  shows as open has a row and none is closed twice, whenever the crash comes;
- a container replaced with a fresh data dir (Kubernetes, compose) still finds its rows,
  as long as it keeps its node id (``[gateway] node``, default the host name: set it, or
  use stable host names such as a StatefulSet's, where containers are replaced).
Several nodes share one database: a node closes only its own rows, never another node's,
since a node cut off from the database may still be serving its viewers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emergency.audit import AuditEntry, AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.model import Actor
from emergency.site import Role
from emergency.store import LiveViewRepo

HEARTBEAT_SECONDS = 3.0
"""How often a node serving video records that it is alive: the most a crash-cut span's
end can fall short of the moment the node died."""
CRASH_REASON = "gateway stopped unexpectedly"


@dataclass(frozen=True)
class LiveView:
    """One view session a node is serving, as much as closing it after a crash needs."""

    session: str
    node: str
    viewer: str
    role: str
    agency: str | None
    camera: str
    stream: str
    grant: str
    source: str | None
    started: datetime
    sign_in: str | None = None  # the sign-in that opened it (emergency.sign_ins)

    @property
    def actor(self) -> Actor:
        """The viewer as the audit records them (id, role, agency), for the entry that closes
        the session after a crash; the viewer was vouched for when the session opened."""
        return Actor(self.viewer, Role(self.role), self.agency, (), True)


def crash_end(view: LiveView, last_heartbeat: datetime | None, now: datetime) -> datetime:
    """When a session a crash cut off is recorded as ended: the node's last heartbeat,
    never before the session started (nothing proves it lasted longer) nor after ``now``."""
    end = last_heartbeat if last_heartbeat is not None else view.started
    return max(view.started, min(end, now))


def view_ended_details(view: LiveView, ended: datetime, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The details of a ``view.ended`` entry: the disclosure record and the reports take
    the span from ``started`` and ``ended``, never from the entry's own time."""
    return {
        "session": view.session,
        "viewer": view.viewer,
        "stream": view.stream,
        "grant": view.grant,
        "started": view.started.isoformat(),
        "ended": ended.isoformat(),
        "seconds": round((ended - view.started).total_seconds(), 3),
        **(extra or {}),
    }


class LiveViews:
    """One node's live view sessions and heartbeat, with the audit entries that open and
    close them (each written in one transaction with its row)."""

    def __init__(
        self,
        store: LiveViewRepo,
        audit: AuditLog,
        clock: Clock,
        node: str,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        if heartbeat_seconds <= 0:
            raise ValueError("heartbeat_seconds must be > 0")
        self._store = store
        self._audit = audit
        self._clock = clock
        self.node = node
        self.heartbeat_seconds = heartbeat_seconds
        self._open: set[str] = set()
        self._last_beat: datetime | None = None

    def __len__(self) -> int:
        return len(self._open)

    def started(self, view: LiveView, *, actor: Actor, reason: str | None) -> AuditEntry:
        """Records the session as live on this node and audits ``view.started``; a beat
        with it, so the node's heartbeat is never older than a session it serves."""
        if view.node != self.node:
            raise ValueError(f"session {view.session} belongs to node {view.node!r}, not {self.node!r}")
        now = self._clock.now()
        with self._store.transaction():
            self._store.insert_live_view(view)
            self._store.record_heartbeat(self.node, now)
            entry = self._audit.append(
                AuditEvent.VIEW_STARTED,
                actor=actor,
                object=f"camera:{view.camera}",
                source=view.source,
                reason=reason,
                details={"session": view.session, "stream": view.stream, "grant": view.grant},
            )
        self._open.add(view.session)
        self._last_beat = now
        return entry

    def ended(
        self,
        view: LiveView,
        *,
        actor: Actor,
        reason: str,
        ended: datetime,
        extra: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Audits ``view.ended`` and forgets the session, together."""
        with self._store.transaction():
            entry = self._audit.append(
                AuditEvent.VIEW_ENDED,
                actor=actor,
                object=f"camera:{view.camera}",
                source=view.source,
                reason=reason,
                details=view_ended_details(view, ended, extra),
            )
            self._store.delete_live_view(view.session)
        self._open.discard(view.session)
        return entry

    def beat_if_due(self) -> bool:
        """For the ticker: records the heartbeat when sessions are live and the last beat
        is ``heartbeat_seconds`` old. True when it beat."""
        if not self._open:
            return False
        now = self._clock.now()
        if self._last_beat is not None and (now - self._last_beat).total_seconds() < self.heartbeat_seconds:
            return False
        self._store.record_heartbeat(self.node, now)
        self._last_beat = now
        return True

    def close_orphans(self) -> list[AuditEntry]:
        """At start, before serving: closes the sessions this node's previous run left
        live (it crashed), each ended at the last heartbeat, after one entry saying the
        node had stopped unexpectedly. Other nodes' sessions are left alone."""
        now = self._clock.now()
        with self._store.transaction():  # serialised: two starts under one name close them once
            views = self._store.live_views(self.node)
            if not views:
                return []
            beat = self._store.last_heartbeat(self.node)
            entries = [
                self._audit.append(
                    AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY,
                    actor_id="system",
                    object=f"node:{self.node}",
                    reason=CRASH_REASON,
                    details={
                        "last_heartbeat": beat.isoformat() if beat else None,
                        "heartbeat_seconds": self.heartbeat_seconds,
                        "sessions": sorted(v.session for v in views),
                    },
                )
            ]
            for view in views:
                entries.append(
                    self.ended(
                        view,
                        actor=view.actor,
                        reason=CRASH_REASON,
                        ended=crash_end(view, beat, now),
                        extra={"last_heartbeat": beat.isoformat() if beat else None, "closed_at": now.isoformat()},
                    )
                )
        return entries
