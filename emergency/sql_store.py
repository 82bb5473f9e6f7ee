"""What SqliteStore and PgStore share: every repository method whose logic is the same in
both, written once against a few dialect hooks.

Shared statements use ``?`` placeholders; a dialect whose driver wants another style
rewrites them where it runs them (``_rows`` and ``_write``).
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from emergency.audit import AuditEntry
from emergency.audit.checkpoints import AuditKey, Checkpoint
from emergency.errors import Conflict
from emergency.live_views import LiveView
from emergency.model import Action, Activation, Emergency, Grant, IncidentType, PendingExtension, State, Trigger
from emergency.outbox import Notification
from emergency.records import RecordKind, RecordLink
from emergency.requests import AccessRequest, RequestState
from emergency.sql_guest_passes import GuestPassSql
from emergency.sql_people import SqlPeople
from emergency.sql_sign_ins import SqlSignIns

log = logging.getLogger(__name__)

REQUEST_COLUMNS = (
    "id",
    "building",
    "requested_by",
    "agency",
    "call_type",
    "reason",
    "action",
    "incident_type",
    "created",
    "state",
    "decided_by",
    "decided_at",
    "decision_reason",
    "emergency_id",
)
EMERGENCY_COLUMNS = (
    "id",
    "building",
    "state",
    "action",
    "incident_type",
    "drill",
    "threat_basis",
    "declared_by",
    "declared_at",
    "confirm_deadline",
    "activated_at",
    "expires_at",
    "ended_at",
    "end_reason",
    "trigger",
    "activation",
    "pending_extension",
    "extensions",
)
GRANT_COLUMNS = ("id", "emergency_id", "agency", "camera_ids", "starts", "expires", "ended_at", "end_reason")
OUTBOX_COLUMNS = (
    "id",
    "topic",
    "subscriber",
    "payload",
    "created",
    "attempts",
    "next_attempt",
    "delivered_at",
    "dead_at",
    "last_error",
)
AUDIT_COLUMNS = (
    "seq",
    "ts",
    "node",
    "event_type",
    "actor_id",
    "actor_role",
    "actor_agency",
    "object",
    "outcome",
    "source",
    "reason",
    "details",
    "prev_hash",
    "hash",
)
CHECKPOINT_COLUMNS = ("seq", "hash", "count", "ts", "node", "key_id", "signature")
LIVE_VIEW_COLUMNS = (
    "session_id",
    "node",
    "viewer",
    "viewer_role",
    "viewer_agency",
    "camera_id",
    "stream",
    "grant_id",
    "source",
    "started",
    "sign_in",
)

_OUTBOX_STATES = {
    "pending": "delivered_at IS NULL AND dead_at IS NULL",
    "delivered": "delivered_at IS NOT NULL",
    "dead": "dead_at IS NOT NULL",
}
_DETAILS_TEXT = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


Params = tuple[Any, ...]
"""A statement's parameters, or a table row as written."""


class Row(Protocol):
    """A fetched row, read by column name (``sqlite3.Row`` or a psycopg dict row)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Connection(Protocol):
    """What the shared code asks of the driver's connection: statements without parameters."""

    def execute(self, sql: str, /) -> Any: ...
    def close(self) -> None: ...


def iso_utc(t: datetime | None) -> str | None:
    """Fixed-width UTC text, so stored times sort as text in time order."""
    return t.astimezone(UTC).isoformat(timespec="microseconds") if t else None


def from_iso(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns[1:])} WHERE id = ?"


class SqlStore(SqlSignIns, GuestPassSql, SqlPeople, ABC):
    """One connection (``_conn``, opened by the subclass) shared by threads behind a
    reentrant lock; ``transaction()`` nests with savepoints."""

    _constraint_error: ClassVar[type[Exception]]
    """What the driver raises when a write breaks a constraint (an open emergency's building)."""
    _duplicate_error: ClassVar[type[Exception]]
    """What the driver raises for a key that is already there."""
    _BYTEWISE: ClassVar[str]
    """The collation ordering text by code point, so both stores list in the same order."""
    _OPEN_RECORD: ClassVar[str | None]
    """SQL condition for an open restraint episode; None: ``record_links`` filters in Python."""

    _conn: Connection

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._on_commit: list[tuple[int, Callable[[], None]]] = []

    # dialect hooks

    @abstractmethod
    def _begin(self) -> None:
        """Starts the outermost transaction, serialised with every other writer."""

    @abstractmethod
    def _undo(self, *statements: str) -> None:
        """Runs the statements that undo a failed transaction or savepoint."""

    @abstractmethod
    def _rows(self, sql: str, params: Params = ()) -> Sequence[Row]:
        """Runs a query (in the caller's transaction, if any); its rows."""

    @abstractmethod
    def _write(self, sql: str, params: Params) -> int:
        """Runs one statement in its own transaction (a savepoint inside the caller's); the rowcount."""

    @staticmethod
    @abstractmethod
    def _ts(t: datetime | None, /) -> Any:
        """A time as its column stores it."""

    @staticmethod
    @abstractmethod
    def _dt(value: Any, /) -> datetime | None:
        """A time column read back as an aware datetime."""

    @staticmethod
    @abstractmethod
    def _from_json(value: Any, /) -> Any:
        """A JSON column read back as Python values (the driver may have parsed it already)."""

    @abstractmethod
    def insert_audit_entries(self, entries: list[AuditEntry]) -> None:
        """Several entries at once (group commit); the caller's transaction, if any, holds them."""

    def _at(self, value: Any) -> datetime:
        """A NOT NULL time column read back."""
        return _required(self._dt(value))

    def _storable(self, text: str | None) -> str | None:
        """Free text from outside (a delivery error) as the column can hold it."""
        return text

    # connection and transactions

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        hooks: list[tuple[int, Callable[[], None]]] = []
        with self._lock:
            savepoint = f"sp{self._depth}"
            if self._depth == 0:
                self._begin()
            else:
                self._conn.execute(f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._on_commit = [h for h in self._on_commit if h[0] <= self._depth]
                if self._depth == 0:
                    self._undo("ROLLBACK")
                else:
                    self._undo(f"ROLLBACK TO SAVEPOINT {savepoint}", f"RELEASE SAVEPOINT {savepoint}")
                raise
            self._depth -= 1
            if self._depth:
                self._conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                return
            hooks, self._on_commit = self._on_commit, []
            self._conn.execute("COMMIT")
        # after the connection is free again: a hook's fsync does not hold up other threads
        for _, hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("a step after a commit failed (the commit stands)")

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the calling thread's transaction commits (at once outside one);
        dropped if it, or the savepoint it was registered in, rolls back. The audit writer
        feeds the mirror and the witness this way, from what it wrote, never read back."""
        with self._lock:
            if self._depth == 0:
                hook()
            else:
                self._on_commit.append((self._depth, hook))

    def audit_in_transaction(self) -> bool:
        """True when the calling thread is inside ``transaction()`` (an audit append then joins it)."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread holds the connection, so we are not inside a transaction
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    def _first(self, sql: str, params: Params = ()) -> Row | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _update(self, table: str, columns: tuple[str, ...], row: Params) -> None:
        """Rewrites the row whose id is ``row[0]``; KeyError if there is none."""
        if self._write(_update_sql(table, columns), row[1:] + row[:1]) != 1:
            raise KeyError(row[0])

    def _insert_new(self, sql: str, params: Params) -> bool:
        """False when the key is there already."""
        try:
            self._write(sql, params)
        except self._duplicate_error:
            return False
        return True

    # emergencies

    def insert_emergency(self, e: Emergency) -> None:
        try:
            self._write(insert_sql("emergencies", EMERGENCY_COLUMNS), self._emergency_row(e))
        except self._constraint_error as exc:
            raise Conflict(f"building {e.building!r} already has an open emergency") from exc

    def update_emergency(self, e: Emergency) -> None:
        self._update("emergencies", EMERGENCY_COLUMNS, self._emergency_row(e))

    def get_emergency(self, emergency_id: str) -> Emergency | None:
        r = self._first("SELECT * FROM emergencies WHERE id = ?", (emergency_id,))
        return self._emergency(r) if r is not None else None

    def list_emergencies(self, *, open_only: bool = False) -> list[Emergency]:
        where = "WHERE state IN ('pending', 'active')" if open_only else ""
        rows = self._rows(f"SELECT * FROM emergencies {where} ORDER BY declared_at DESC, id")
        return [self._emergency(r) for r in rows]

    # grants

    def insert_grant(self, g: Grant) -> None:
        self._write(insert_sql("grants", GRANT_COLUMNS), self._grant_row(g))

    def update_grant(self, g: Grant) -> None:
        self._update("grants", GRANT_COLUMNS, self._grant_row(g))

    def get_grant(self, grant_id: str) -> Grant | None:
        r = self._first("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return self._grant(r) if r is not None else None

    def grants_of_emergency(self, emergency_id: str) -> list[Grant]:
        rows = self._rows("SELECT * FROM grants WHERE emergency_id = ? ORDER BY starts, id", (emergency_id,))
        return [self._grant(r) for r in rows]

    def unended_grants(self, *, agency: str | None = None) -> list[Grant]:
        if agency is None:
            rows = self._rows("SELECT * FROM grants WHERE ended_at IS NULL ORDER BY starts, id")
        else:
            rows = self._rows(
                "SELECT * FROM grants WHERE ended_at IS NULL AND agency = ? ORDER BY starts, id", (agency,)
            )
        return [self._grant(r) for r in rows]

    # audit log

    def last_audit_entry(self) -> AuditEntry | None:
        r = self._first("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
        return self._audit_entry(r) if r is not None else None

    def insert_audit_entry(self, entry: AuditEntry) -> None:
        self.insert_audit_entries([entry])

    def audit_entries_of_type(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        rows = self._rows("SELECT * FROM audit_log WHERE event_type = ? ORDER BY seq DESC LIMIT ?", (event_type, limit))
        return [self._audit_entry(r) for r in rows]

    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        rows = self._rows("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [self._audit_entry(r) for r in rows]

    # audit checkpoints and signing keys

    def insert_audit_checkpoint(self, cp: Checkpoint) -> bool:
        """False if a checkpoint at that seq exists already (another process or node signed it first)."""
        return self._insert_new(
            insert_sql("audit_checkpoints", CHECKPOINT_COLUMNS),
            (cp.seq, cp.hash, cp.count, cp.ts, cp.node, cp.key_id, _signature_column(cp)),
        )

    def last_audit_checkpoint(self) -> Checkpoint | None:
        r = self._first("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
        return _checkpoint(r) if r is not None else None

    def audit_checkpoints(self, *, after_seq: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = self._rows("SELECT * FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [_checkpoint(r) for r in rows]

    def insert_audit_key(self, key: AuditKey) -> None:
        """Records a node's public key; a key already recorded is left as it is."""
        self._write(
            "INSERT INTO audit_keys (key_id, node, public_key, created) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key_id) DO NOTHING",
            (key.key_id, key.node, key.public_key, key.created),
        )

    def audit_keys(self) -> list[AuditKey]:
        rows = self._rows("SELECT key_id, node, public_key, created FROM audit_keys ORDER BY created, key_id")
        return [AuditKey(r["key_id"], r["node"], r["public_key"], r["created"]) for r in rows]

    # notification outbox (rows are per notification and subscriber; seq keeps enqueue order)

    def insert_notification(self, n: Notification) -> None:
        self._write(insert_sql("outbox", OUTBOX_COLUMNS), self._notification_row(n))

    def update_notification(self, n: Notification) -> None:
        """Saves the delivery state (attempts, schedule, outcome); topic and payload never change."""
        sql = (
            "UPDATE outbox SET attempts = ?, next_attempt = ?, delivered_at = ?, dead_at = ?, last_error = ?"
            " WHERE id = ?"
        )
        params = (
            n.attempts,
            self._ts(n.next_attempt),
            self._ts(n.delivered_at),
            self._ts(n.dead_at),
            self._storable(n.last_error),
            n.id,
        )
        if self._write(sql, params) != 1:
            raise KeyError(n.id)

    def get_notification(self, notification_id: str) -> Notification | None:
        r = self._first("SELECT * FROM outbox WHERE id = ?", (notification_id,))
        return self._notification(r) if r is not None else None

    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        """For each subscriber, its oldest undelivered live notification, if that one is due:
        a subscriber receives its notifications in the order they were enqueued."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE seq IN ("
            "  SELECT MIN(seq) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY subscriber"
            ") AND next_attempt <= ? ORDER BY next_attempt, seq LIMIT ?",
            (self._ts(now), limit),
        )
        return [self._notification(r) for r in rows]

    def count_notifications(self, state: str) -> int:
        return int(self._rows(f"SELECT COUNT(*) AS n FROM outbox WHERE {_OUTBOX_STATES[state]}")[0]["n"])

    def list_notifications(self, state: str, *, limit: int = 100) -> list[Notification]:
        """Newest first."""
        rows = self._rows(f"SELECT * FROM outbox WHERE {_OUTBOX_STATES[state]} ORDER BY seq DESC LIMIT ?", (limit,))
        return [self._notification(r) for r in rows]

    # access requests, record links and trigger receipts

    def insert_access_request(self, r: AccessRequest) -> None:
        self._write(insert_sql("access_requests", REQUEST_COLUMNS), self._request_row(r))

    def update_access_request(self, r: AccessRequest) -> None:
        self._update("access_requests", REQUEST_COLUMNS, self._request_row(r))

    def get_access_request(self, request_id: str) -> AccessRequest | None:
        r = self._first("SELECT * FROM access_requests WHERE id = ?", (request_id,))
        return self._request(r) if r is not None else None

    def list_access_requests(self, *, pending_only: bool = False) -> list[AccessRequest]:
        where = "WHERE state = 'pending'" if pending_only else ""
        return [self._request(r) for r in self._rows(f"SELECT * FROM access_requests {where} ORDER BY created DESC")]

    def upsert_record_link(self, link: RecordLink) -> None:
        self._write(
            "INSERT INTO record_links (kind, source, external_id, building, fields, received, updated, emergency_id,"
            " review) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, source, external_id) DO UPDATE SET"
            " building = excluded.building, fields = excluded.fields, updated = excluded.updated,"
            " emergency_id = excluded.emergency_id, review = excluded.review",
            (
                link.kind.value,
                link.source,
                link.external_id,
                link.building,
                json.dumps(link.fields, sort_keys=True),
                self._ts(link.received),
                self._ts(link.updated),
                link.emergency_id,
                link.review,
            ),
        )

    def get_record_link(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None:
        r = self._first(
            "SELECT * FROM record_links WHERE kind = ? AND source = ? AND external_id = ?",
            (kind.value, source, external_id),
        )
        return self._record_link(r) if r is not None else None

    def record_links(self, kind: RecordKind | None = None, *, open_only: bool = False) -> list[RecordLink]:
        """``open_only``: restraint episodes without an end (the ones that can hold cameras):
        ``open`` is 1 as JSON (true, 1 or 1.0)."""
        clauses, params = [], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind.value)
        if open_only and self._OPEN_RECORD:
            clauses.append(self._OPEN_RECORD)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._rows(
            f"SELECT * FROM record_links{where} ORDER BY received, external_id COLLATE {self._BYTEWISE}", tuple(params)
        )
        links = [self._record_link(r) for r in rows]
        if open_only and not self._OPEN_RECORD:
            return [x for x in links if _is_one(x.fields.get("open"))]
        return links

    def remember_receipt(self, origin: str, event_id: str, received: datetime) -> bool:
        """False when this (origin, event id) was seen before: a replay."""
        return self._insert_new(
            "INSERT INTO trigger_receipts (origin, event_id, received) VALUES (?, ?, ?)",
            (origin, event_id, self._ts(received)),
        )

    # live view sessions and node heartbeats

    def insert_live_view(self, view: LiveView) -> None:
        self._write(insert_sql("live_views", LIVE_VIEW_COLUMNS), self._live_view_row(view))

    def delete_live_view(self, session_id: str) -> bool:
        return self._write("DELETE FROM live_views WHERE session_id = ?", (session_id,)) == 1

    def live_views(self, node: str) -> list[LiveView]:
        rows = self._rows("SELECT * FROM live_views WHERE node = ? ORDER BY started, session_id", (node,))
        return [self._live_view(r) for r in rows]

    def record_heartbeat(self, node: str, at: datetime) -> None:
        self._write(
            "INSERT INTO node_heartbeats (node, beat_at) VALUES (?, ?)"
            " ON CONFLICT (node) DO UPDATE SET beat_at = excluded.beat_at",
            (node, self._ts(at)),
        )

    def last_heartbeat(self, node: str) -> datetime | None:
        r = self._first("SELECT beat_at FROM node_heartbeats WHERE node = ?", (node,))
        return self._dt(r["beat_at"]) if r is not None else None

    # rows <-> domain objects

    def _live_view_row(self, v: LiveView) -> Params:
        return (
            v.session,
            v.node,
            v.viewer,
            v.role,
            v.agency,
            v.camera,
            v.stream,
            v.grant,
            v.source,
            self._ts(v.started),
            v.sign_in,
        )

    def _live_view(self, r: Row) -> LiveView:
        return LiveView(
            session=r["session_id"],
            node=r["node"],
            viewer=r["viewer"],
            role=r["viewer_role"],
            agency=r["viewer_agency"],
            camera=r["camera_id"],
            stream=r["stream"],
            grant=r["grant_id"],
            source=r["source"],
            started=self._at(r["started"]),
            sign_in=r["sign_in"],
        )

    def _emergency_row(self, e: Emergency) -> Params:
        ts = self._ts
        return (
            e.id,
            e.building,
            e.state.value,
            e.action.value,
            e.incident_type.value,
            bool(e.drill),
            e.threat_basis,
            e.declared_by,
            ts(e.declared_at),
            ts(e.confirm_deadline),
            ts(e.activated_at),
            ts(e.expires_at),
            ts(e.ended_at),
            e.end_reason,
            e.trigger.value,
            e.activation.value,
            _pending_json(e.pending_extension),
            e.extensions,
        )

    def _emergency(self, r: Row) -> Emergency:
        dt = self._dt
        return Emergency(
            id=r["id"],
            building=r["building"],
            state=State(r["state"]),
            action=Action(r["action"]),
            incident_type=IncidentType(r["incident_type"]),
            drill=bool(r["drill"]),
            threat_basis=r["threat_basis"],
            declared_by=r["declared_by"],
            declared_at=self._at(r["declared_at"]),
            confirm_deadline=self._at(r["confirm_deadline"]),
            activated_at=dt(r["activated_at"]),
            expires_at=dt(r["expires_at"]),
            ended_at=dt(r["ended_at"]),
            end_reason=r["end_reason"],
            trigger=Trigger(r["trigger"]),
            activation=Activation(r["activation"]),
            pending_extension=self._pending(r["pending_extension"]),
            extensions=r["extensions"],
        )

    def _pending(self, value: Any) -> PendingExtension | None:
        if not value:
            return None
        d = self._from_json(value)
        return PendingExtension(d["minutes"], d["reason"], d["requested_by"], _required(from_iso(d["requested_at"])))

    def _grant_row(self, g: Grant) -> Params:
        return (
            g.id,
            g.emergency_id,
            g.agency,
            json.dumps(sorted(g.camera_ids)),
            self._ts(g.starts),
            self._ts(g.expires),
            self._ts(g.ended_at),
            g.end_reason,
        )

    def _grant(self, r: Row) -> Grant:
        return Grant(
            id=r["id"],
            emergency_id=r["emergency_id"],
            agency=r["agency"],
            camera_ids=frozenset(self._from_json(r["camera_ids"])),
            starts=self._at(r["starts"]),
            expires=self._at(r["expires"]),
            ended_at=self._dt(r["ended_at"]),
            end_reason=r["end_reason"],
        )

    def _request_row(self, r: AccessRequest) -> Params:
        return (
            r.id,
            r.building,
            r.requested_by,
            r.agency,
            r.call_type,
            r.reason,
            r.action.value,
            r.incident_type.value,
            self._ts(r.created),
            r.state.value,
            r.decided_by,
            self._ts(r.decided_at),
            r.decision_reason,
            r.emergency_id,
        )

    def _request(self, r: Row) -> AccessRequest:
        return AccessRequest(
            id=r["id"],
            building=r["building"],
            requested_by=r["requested_by"],
            agency=r["agency"],
            call_type=r["call_type"],
            reason=r["reason"],
            action=Action(r["action"]),
            incident_type=IncidentType(r["incident_type"]),
            created=self._at(r["created"]),
            state=RequestState(r["state"]),
            decided_by=r["decided_by"],
            decided_at=self._dt(r["decided_at"]),
            decision_reason=r["decision_reason"],
            emergency_id=r["emergency_id"],
        )

    def _record_link(self, r: Row) -> RecordLink:
        return RecordLink(
            RecordKind(r["kind"]),
            r["source"],
            r["external_id"],
            r["building"],
            self._from_json(r["fields"]),
            self._at(r["received"]),
            self._at(r["updated"]),
            r["emergency_id"],
            r["review"],
        )

    def _notification_row(self, n: Notification) -> Params:
        return (
            n.id,
            n.topic,
            n.subscriber,
            json.dumps(n.payload, sort_keys=True),
            self._ts(n.created),
            n.attempts,
            self._ts(n.next_attempt),
            self._ts(n.delivered_at),
            self._ts(n.dead_at),
            n.last_error,
        )

    def _notification(self, r: Row) -> Notification:
        return Notification(
            id=r["id"],
            topic=r["topic"],
            payload=self._from_json(r["payload"]),
            created=self._at(r["created"]),
            attempts=r["attempts"],
            next_attempt=self._at(r["next_attempt"]),
            delivered_at=self._dt(r["delivered_at"]),
            last_error=r["last_error"],
            subscriber=r["subscriber"],
            dead_at=self._dt(r["dead_at"]),
        )

    def _audit_row(self, e: AuditEntry) -> Params:
        """Details are stored as compact sorted JSON, the very text the entry's hash covers,
        so verification can hash what is stored (rows written before this stored
        ``", "``-separated JSON; they verify through the slower parse-and-redump path)."""
        return (
            e.seq,
            e.ts,
            e.node,
            e.event_type,
            e.actor_id,
            e.actor_role,
            e.actor_agency,
            e.object,
            e.outcome,
            e.source,
            e.reason,
            _DETAILS_TEXT(e.details),
            e.prev_hash,
            e.hash,
        )

    def _audit_fields(self, r: Row) -> dict[str, Any]:
        """The audit columns of a row as the entry was hashed (details still JSON text)."""
        return {c: r[c] for c in AUDIT_COLUMNS}

    def _audit_entry(self, r: Row) -> AuditEntry:
        values = self._audit_fields(r)
        values["details"] = json.loads(values["details"])
        return AuditEntry(**values)


def _pending_json(p: PendingExtension | None) -> str | None:
    """Stored as JSON text with an ISO time, whatever the dialect stores other times as."""
    if p is None:
        return None
    return json.dumps(
        {
            "minutes": p.minutes,
            "reason": p.reason,
            "requested_by": p.requested_by,
            "requested_at": iso_utc(p.requested_at),
        }
    )


def _required(t: datetime | None) -> datetime:
    if t is None:
        raise ValueError("a time the schema requires is missing")
    return t


def _signature_column(cp: Checkpoint) -> str:
    """A v3 checkpoint's link rides in its signature column as ``prev:signature`` (base64
    has no ``:``), so the table keeps the columns release 0.1 made."""
    return cp.signature if cp.prev is None else f"{cp.prev}:{cp.signature}"


def _checkpoint(r: Row) -> Checkpoint:
    prev, colon, signature = str(r["signature"]).rpartition(":")
    return Checkpoint(
        r["seq"], r["hash"], r["count"], r["ts"], r["node"], r["key_id"], signature, prev if colon else None
    )


def _is_one(value: object) -> bool:
    """What SQLite's ``json_extract(...) = 1`` accepts: true, 1 or 1.0."""
    return isinstance(value, bool | int | float) and value == 1
