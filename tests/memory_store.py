"""An in-memory store implementing only the repository protocols of emergency/store.py,
so domain tests run without SQLite and show the domain needs nothing more.

Transactions nest and roll back: each level keeps a copy of the tables it may restore.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from emergency.errors import Conflict
from emergency.model import Emergency, Grant, State
from emergency.records import RecordKind, RecordLink

if TYPE_CHECKING:
    from emergency.audit import AuditEntry
    from emergency.audit.checkpoints import AuditKey, Checkpoint
    from emergency.live_views import LiveView
    from emergency.outbox import Notification
    from emergency.people import Person
    from emergency.requests import AccessRequest
    from emergency.sign_ins import SignInRecord

OPEN = (State.PENDING, State.ACTIVE)


@dataclass
class _Tables:
    emergencies: dict[str, Emergency] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    keys: dict[str, AuditKey] = field(default_factory=dict)
    requests: dict[str, AccessRequest] = field(default_factory=dict)
    links: dict[tuple[RecordKind, str, str], RecordLink] = field(default_factory=dict)
    outbox: dict[str, Notification] = field(default_factory=dict)  # insertion order is the enqueue order
    receipts: set[tuple[str, str]] = field(default_factory=set)
    live_views: dict[str, LiveView] = field(default_factory=dict)
    heartbeats: dict[str, datetime] = field(default_factory=dict)
    sign_ins: dict[str, SignInRecord] = field(default_factory=dict)

    def copy(self) -> _Tables:
        return _Tables(
            dict(self.emergencies),
            dict(self.grants),
            list(self.audit),
            dict(self.checkpoints),
            dict(self.keys),
            dict(self.requests),
            dict(self.links),
            dict(self.outbox),
            set(self.receipts),
            dict(self.live_views),
            dict(self.heartbeats),
            dict(self.sign_ins),
        )


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._t = _Tables()
        self._people: dict[str, Person] = {}  # rewritten whole by each sign-in, so outside the undo log

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            saved = self._t.copy()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._t = saved
                raise
            finally:
                self._depth -= 1

    def audit_in_transaction(self) -> bool:
        """The audit log's optional probe: an append inside a transaction joins it; outside,
        it commits on its own and may sign a checkpoint."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    # emergencies

    def insert_emergency(self, e: Emergency) -> None:
        if e.state in OPEN and any(o.building == e.building and o.state in OPEN for o in self._t.emergencies.values()):
            raise Conflict(f"building {e.building!r} already has an open emergency")
        self._t.emergencies[e.id] = e

    def update_emergency(self, e: Emergency) -> None:
        if e.id not in self._t.emergencies:
            raise KeyError(e.id)
        self._t.emergencies[e.id] = e

    def get_emergency(self, emergency_id: str) -> Emergency | None:
        return self._t.emergencies.get(emergency_id)

    def list_emergencies(self, *, open_only: bool = False) -> list[Emergency]:
        found = [e for e in self._t.emergencies.values() if not open_only or e.state in OPEN]
        found.sort(key=lambda e: e.id)
        found.sort(key=lambda e: e.declared_at, reverse=True)
        return found

    # grants

    def insert_grant(self, g: Grant) -> None:
        self._t.grants[g.id] = g

    def update_grant(self, g: Grant) -> None:
        if g.id not in self._t.grants:
            raise KeyError(g.id)
        self._t.grants[g.id] = g

    def get_grant(self, grant_id: str) -> Grant | None:
        return self._t.grants.get(grant_id)

    def grants_of_emergency(self, emergency_id: str) -> list[Grant]:
        return sorted(
            (g for g in self._t.grants.values() if g.emergency_id == emergency_id), key=lambda g: (g.starts, g.id)
        )

    def unended_grants(self, *, agency: str | None = None) -> list[Grant]:
        return sorted(
            (g for g in self._t.grants.values() if g.ended_at is None and (agency is None or g.agency == agency)),
            key=lambda g: (g.starts, g.id),
        )

    # audit log

    def last_audit_entry(self) -> AuditEntry | None:
        return self._t.audit[-1] if self._t.audit else None

    def insert_audit_entry(self, entry: AuditEntry) -> None:
        self._t.audit.append(entry)

    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return [e for e in self._t.audit if e.seq > after_seq][:limit]

    def audit_entries_of_type(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        return [e for e in reversed(self._t.audit) if e.event_type == event_type][:limit]

    # audit checkpoints and signing keys

    def insert_audit_checkpoint(self, cp: Checkpoint) -> bool:
        if cp.seq in self._t.checkpoints:
            return False
        self._t.checkpoints[cp.seq] = cp
        return True

    def last_audit_checkpoint(self) -> Checkpoint | None:
        return self._t.checkpoints[max(self._t.checkpoints)] if self._t.checkpoints else None

    def audit_checkpoints(self, *, after_seq: int = 0, limit: int = 1000) -> list[Checkpoint]:
        return [self._t.checkpoints[s] for s in sorted(self._t.checkpoints) if s > after_seq][:limit]

    def insert_audit_key(self, key: AuditKey) -> None:
        self._t.keys.setdefault(key.key_id, key)

    def audit_keys(self) -> list[AuditKey]:
        return sorted(self._t.keys.values(), key=lambda k: (k.created, k.key_id))

    # access requests

    def insert_access_request(self, r: AccessRequest) -> None:
        self._t.requests[r.id] = r

    def update_access_request(self, r: AccessRequest) -> None:
        if r.id not in self._t.requests:
            raise KeyError(r.id)
        self._t.requests[r.id] = r

    def get_access_request(self, request_id: str) -> AccessRequest | None:
        return self._t.requests.get(request_id)

    def list_access_requests(self, *, pending_only: bool = False) -> list[AccessRequest]:
        found = [r for r in self._t.requests.values() if not pending_only or r.state == "pending"]
        return sorted(found, key=lambda r: r.created, reverse=True)

    # record links

    def upsert_record_link(self, link: RecordLink) -> None:
        key = (link.kind, link.source, link.external_id)
        before = self._t.links.get(key)
        self._t.links[key] = (
            link
            if before is None
            else RecordLink(
                link.kind,
                link.source,
                link.external_id,
                link.building,
                link.fields,
                before.received,
                link.updated,
                link.emergency_id,
                link.review,
            )
        )

    def get_record_link(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None:
        return self._t.links.get((kind, source, external_id))

    def record_links(self, kind: RecordKind | None = None, *, open_only: bool = False) -> list[RecordLink]:
        found = [
            x
            for x in self._t.links.values()
            if (kind is None or x.kind is kind) and (not open_only or x.fields.get("open") == 1)
        ]
        return sorted(found, key=lambda x: (x.received, x.external_id))

    # notification outbox

    def insert_notification(self, n: Notification) -> None:
        self._t.outbox[n.id] = n

    def update_notification(self, n: Notification) -> None:
        if n.id not in self._t.outbox:
            raise KeyError(n.id)
        self._t.outbox[n.id] = n

    def get_notification(self, notification_id: str) -> Notification | None:
        return self._t.outbox.get(notification_id)

    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        oldest: dict[str, Notification] = {}
        for n in self._t.outbox.values():
            if n.pending:
                oldest.setdefault(n.subscriber, n)
        order = list(self._t.outbox)
        due = [n for n in oldest.values() if n.next_attempt <= now]
        return sorted(due, key=lambda n: (n.next_attempt, order.index(n.id)))[:limit]

    def count_notifications(self, state: str) -> int:
        return len(self._in_state(state))

    def list_notifications(self, state: str, *, limit: int = 100) -> list[Notification]:
        return list(reversed(self._in_state(state)))[:limit]

    def _in_state(self, state: str) -> list[Notification]:
        rows = self._t.outbox.values()
        if state == "pending":
            return [n for n in rows if n.pending]
        if state == "delivered":
            return [n for n in rows if n.delivered_at is not None]
        if state == "dead":
            return [n for n in rows if n.dead]
        raise KeyError(state)

    # trigger receipts

    def remember_receipt(self, origin: str, event_id: str, received: datetime) -> bool:
        if (origin, event_id) in self._t.receipts:
            return False
        self._t.receipts.add((origin, event_id))
        return True

    # live view sessions and node heartbeats

    def insert_live_view(self, view: LiveView) -> None:
        with self._lock:
            if view.session in self._t.live_views:
                raise Conflict(f"live view {view.session} exists")
            self._t.live_views[view.session] = view

    def delete_live_view(self, session_id: str) -> bool:
        with self._lock:
            return self._t.live_views.pop(session_id, None) is not None

    def live_views(self, node: str) -> list[LiveView]:
        views = [v for v in self._t.live_views.values() if v.node == node]
        return sorted(views, key=lambda v: (v.started, v.session))

    def record_heartbeat(self, node: str, at: datetime) -> None:
        with self._lock:
            self._t.heartbeats[node] = at

    def last_heartbeat(self, node: str) -> datetime | None:
        return self._t.heartbeats.get(node)

    # sign-ins

    def insert_sign_in(self, record: SignInRecord) -> None:
        with self._lock:
            if record.id in self._t.sign_ins:
                raise Conflict(f"sign-in {record.id} exists")
            self._t.sign_ins[record.id] = record

    def update_sign_in(self, record: SignInRecord) -> None:
        with self._lock:
            if record.id in self._t.sign_ins:
                self._t.sign_ins[record.id] = record

    def get_sign_in(self, sign_in_id: str) -> SignInRecord | None:
        return self._t.sign_ins.get(sign_in_id)

    def sign_ins_by_id(self, ids: list[str]) -> list[SignInRecord]:
        return [self._t.sign_ins[i] for i in dict.fromkeys(ids) if i in self._t.sign_ins]

    def sign_ins_of(self, account_id: str, *, unended_only: bool = False) -> list[SignInRecord]:
        found = [
            r
            for r in self._t.sign_ins.values()
            if r.account_id == account_id and not (unended_only and r.ended_at is not None)
        ]
        return sorted(found, key=lambda r: (r.created, r.id))

    def live_sign_ins(self, now: datetime, account_id: str | None = None) -> list[SignInRecord]:
        found = [
            r for r in self._t.sign_ins.values() if r.live(now) and (account_id is None or r.account_id == account_id)
        ]
        return sorted(found, key=lambda r: (r.created, r.id))

    def sign_ins_watching(self, ids: list[str]) -> set[str]:
        wanted = set(ids)
        return {v.sign_in for v in self._t.live_views.values() if v.sign_in in wanted and v.sign_in}

    # people provisioned at sign-in

    def upsert_person(self, person: Person) -> None:
        with self._lock:
            old = self._people.get(person.id)
            self._people[person.id] = person if old is None else replace(person, first_seen=old.first_seen)

    def get_person(self, person_id: str) -> Person | None:
        return self._people.get(person_id)
