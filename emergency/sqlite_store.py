"""SQLite storage for emergencies, grants and the audit log (the embedded default).

The audit table refuses UPDATE and DELETE through triggers; the hash chain catches
anyone who drops them first.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from emergency.audit import AuditEntry
from emergency.checkpoints import AuditKey, Checkpoint
from emergency.errors import Conflict
from emergency.records import RecordKind, RecordLink
from emergency.requests import AccessRequest, RequestState
from emergency.model import Action, Activation, Emergency, Grant, IncidentType, PendingExtension, State, Trigger
from emergency.outbox import Notification

SCHEMA = """
CREATE TABLE IF NOT EXISTS emergencies (
    id TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    state TEXT NOT NULL,
    action TEXT NOT NULL,
    incident_type TEXT NOT NULL,
    drill INTEGER NOT NULL,
    threat_basis TEXT,
    declared_by TEXT NOT NULL,
    declared_at TEXT NOT NULL,
    confirm_deadline TEXT NOT NULL,
    activated_at TEXT,
    expires_at TEXT,
    ended_at TEXT,
    end_reason TEXT,
    trigger TEXT NOT NULL DEFAULT 'panel',
    activation TEXT NOT NULL DEFAULT 'window',
    pending_extension TEXT,
    extensions INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS emergencies_one_open_per_building
    ON emergencies (building) WHERE state IN ('pending', 'active');

CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    emergency_id TEXT NOT NULL REFERENCES emergencies (id),
    agency TEXT NOT NULL,
    camera_ids TEXT NOT NULL,
    starts TEXT NOT NULL,
    expires TEXT NOT NULL,
    ended_at TEXT,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS grants_by_emergency ON grants (emergency_id);
CREATE INDEX IF NOT EXISTS grants_unended ON grants (agency) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    node TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor_id TEXT,
    actor_role TEXT,
    actor_agency TEXT,
    object TEXT NOT NULL,
    outcome TEXT NOT NULL,
    source TEXT,
    reason TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    payload TEXT NOT NULL,
    created TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt TEXT NOT NULL,
    delivered_at TEXT,
    dead_at TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending_by_subscriber
    ON outbox (subscriber, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;

CREATE TABLE IF NOT EXISTS access_requests (
    id TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    agency TEXT,
    call_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    incident_type TEXT NOT NULL,
    created TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    decision_reason TEXT,
    emergency_id TEXT
);

-- Links to records kept in the district's own systems (threats, restraint episodes, reports).
CREATE TABLE IF NOT EXISTS record_links (
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    building TEXT NOT NULL,
    fields TEXT NOT NULL,
    received TEXT NOT NULL,
    updated TEXT NOT NULL,
    emergency_id TEXT,
    review TEXT,
    PRIMARY KEY (kind, source, external_id)
);

-- Signed webhook deliveries already acted on: a replayed one is refused.
CREATE TABLE IF NOT EXISTS trigger_receipts (
    origin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received TEXT NOT NULL,
    PRIMARY KEY (origin, event_id)
);

-- Ed25519-signed checkpoints of the audit chain and the nodes' public keys; append-only too.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    count INTEGER NOT NULL,
    ts TEXT NOT NULL,
    node TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TABLE IF NOT EXISTS audit_keys (
    key_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_keys_no_update BEFORE UPDATE ON audit_keys
    BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_keys_no_delete BEFORE DELETE ON audit_keys
    BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
"""

_REQUEST_COLUMNS = (
    "id", "building", "requested_by", "agency", "call_type", "reason", "action", "incident_type", "created",
    "state", "decided_by", "decided_at", "decision_reason", "emergency_id",
)

_EMERGENCY_COLUMNS = (
    "id", "building", "state", "action", "incident_type", "drill", "threat_basis", "declared_by",
    "declared_at", "confirm_deadline", "activated_at", "expires_at", "ended_at", "end_reason",
    "trigger", "activation", "pending_extension", "extensions",
)
# Columns added after the first release, with their definitions, for databases made before.
_ADDED_COLUMNS = {
    "emergencies": {
        "trigger": "TEXT NOT NULL DEFAULT 'panel'",
        "activation": "TEXT NOT NULL DEFAULT 'window'",
        "pending_extension": "TEXT",
        "extensions": "INTEGER NOT NULL DEFAULT 0",
    },
}
_GRANT_COLUMNS = ("id", "emergency_id", "agency", "camera_ids", "starts", "expires", "ended_at", "end_reason")
_OUTBOX_COLUMNS = (
    "id", "topic", "subscriber", "payload", "created", "attempts", "next_attempt", "delivered_at", "dead_at",
    "last_error",
)
_AUDIT_COLUMNS = (
    "seq", "ts", "node", "event_type", "actor_id", "actor_role", "actor_agency", "object", "outcome",
    "source", "reason", "details", "prev_hash", "hash",
)


def _ts(t: datetime | None) -> str | None:
    """Fixed-width UTC text, so stored times sort as text in time order."""
    return t.astimezone(UTC).isoformat(timespec="microseconds") if t else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns[1:])} WHERE id = ?"


class SqliteStore:
    """One connection shared by threads behind a lock; writers use BEGIN IMMEDIATE."""

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        text = str(path)
        self._path = None if text in ("", ":memory:") or text.startswith("file::memory:") else text
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._depth = 0
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._conn.executescript(SCHEMA)

    def _migrate(self) -> None:
        """Add columns that a database from an earlier version lacks (before the schema
        script, whose indexes may name them)."""
        for table, columns in _ADDED_COLUMNS.items():
            present = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if not present:
                continue
            for name, definition in columns.items():
                if name not in present:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            savepoint = f"sp{self._depth}"
            self._conn.execute("BEGIN IMMEDIATE" if self._depth == 0 else f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
                raise
            self._depth -= 1
            self._conn.execute("COMMIT" if self._depth == 0 else f"RELEASE {savepoint}")

    def _rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple) -> int:
        with self.transaction():
            return self._conn.execute(sql, params).rowcount

    # emergencies

    def insert_emergency(self, e: Emergency) -> None:
        try:
            self._write(_insert_sql("emergencies", _EMERGENCY_COLUMNS), _emergency_row(e))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"building {e.building!r} already has an open emergency") from exc

    def update_emergency(self, e: Emergency) -> None:
        row = _emergency_row(e)
        if self._write(_update_sql("emergencies", _EMERGENCY_COLUMNS), row[1:] + row[:1]) != 1:
            raise KeyError(e.id)

    def get_emergency(self, emergency_id: str) -> Emergency | None:
        rows = self._rows("SELECT * FROM emergencies WHERE id = ?", (emergency_id,))
        return _emergency(rows[0]) if rows else None

    def list_emergencies(self, *, open_only: bool = False) -> list[Emergency]:
        where = "WHERE state IN ('pending', 'active')" if open_only else ""
        rows = self._rows(f"SELECT * FROM emergencies {where} ORDER BY declared_at DESC, id")
        return [_emergency(r) for r in rows]

    # grants

    def insert_grant(self, g: Grant) -> None:
        self._write(_insert_sql("grants", _GRANT_COLUMNS), _grant_row(g))

    def update_grant(self, g: Grant) -> None:
        row = _grant_row(g)
        if self._write(_update_sql("grants", _GRANT_COLUMNS), row[1:] + row[:1]) != 1:
            raise KeyError(g.id)

    def get_grant(self, grant_id: str) -> Grant | None:
        rows = self._rows("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return _grant(rows[0]) if rows else None

    def grants_of_emergency(self, emergency_id: str) -> list[Grant]:
        rows = self._rows("SELECT * FROM grants WHERE emergency_id = ? ORDER BY starts, id", (emergency_id,))
        return [_grant(r) for r in rows]

    def unended_grants(self, *, agency: str | None = None) -> list[Grant]:
        if agency is None:
            rows = self._rows("SELECT * FROM grants WHERE ended_at IS NULL ORDER BY starts, id")
        else:
            rows = self._rows(
                "SELECT * FROM grants WHERE ended_at IS NULL AND agency = ? ORDER BY starts, id", (agency,)
            )
        return [_grant(r) for r in rows]

    # audit log

    def last_audit_entry(self) -> AuditEntry | None:
        rows = self._rows("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
        return _audit_entry(rows[0]) if rows else None

    def insert_audit_entry(self, entry: AuditEntry) -> None:
        self._write(_insert_sql("audit_log", _AUDIT_COLUMNS), _audit_row(entry))

    def audit_entries_of_type(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        rows = self._rows("SELECT * FROM audit_log WHERE event_type = ? ORDER BY seq DESC LIMIT ?", (event_type, limit))
        return [_audit_entry(r) for r in rows]

    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        rows = self._rows("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [_audit_entry(r) for r in rows]

    # notification outbox (rows are per notification and subscriber; seq keeps enqueue order)

    def insert_notification(self, n: Notification) -> None:
        self._write(_insert_sql("outbox", _OUTBOX_COLUMNS), _notification_row(n))

    def update_notification(self, n: Notification) -> None:
        """Saves the delivery state (attempts, schedule, outcome); topic and payload never change."""
        sql = (
            "UPDATE outbox SET attempts = ?, next_attempt = ?, delivered_at = ?, dead_at = ?, last_error = ?"
            " WHERE id = ?"
        )
        params = (n.attempts, _ts(n.next_attempt), _ts(n.delivered_at), _ts(n.dead_at), n.last_error, n.id)
        if self._write(sql, params) != 1:
            raise KeyError(n.id)

    def get_notification(self, notification_id: str) -> Notification | None:
        rows = self._rows("SELECT * FROM outbox WHERE id = ?", (notification_id,))
        return _notification(rows[0]) if rows else None

    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        """For each subscriber, its oldest undelivered live notification, if that one is due:
        a subscriber receives its notifications in the order they were enqueued."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE seq IN ("
            "  SELECT MIN(seq) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY subscriber"
            ") AND next_attempt <= ? ORDER BY next_attempt, seq LIMIT ?",
            (_ts(now), limit),
        )
        return [_notification(r) for r in rows]

    # access requests and trigger receipts

    def insert_access_request(self, r: AccessRequest) -> None:
        self._write(_insert_sql("access_requests", _REQUEST_COLUMNS), _request_row(r))

    def update_access_request(self, r: AccessRequest) -> None:
        row = _request_row(r)
        if self._write(_update_sql("access_requests", _REQUEST_COLUMNS), row[1:] + row[:1]) != 1:
            raise KeyError(r.id)

    def get_access_request(self, request_id: str) -> AccessRequest | None:
        rows = self._rows("SELECT * FROM access_requests WHERE id = ?", (request_id,))
        return _request(rows[0]) if rows else None

    def list_access_requests(self, *, pending_only: bool = False) -> list[AccessRequest]:
        where = "WHERE state = 'pending'" if pending_only else ""
        return [_request(r) for r in self._rows(f"SELECT * FROM access_requests {where} ORDER BY created DESC")]

    def upsert_record_link(self, link: RecordLink) -> None:
        self._write(
            "INSERT INTO record_links (kind, source, external_id, building, fields, received, updated, emergency_id,"
            " review) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, source, external_id) DO UPDATE SET"
            " building = excluded.building, fields = excluded.fields, updated = excluded.updated,"
            " emergency_id = excluded.emergency_id, review = excluded.review",
            (link.kind.value, link.source, link.external_id, link.building, json.dumps(link.fields, sort_keys=True),
             _ts(link.received), _ts(link.updated), link.emergency_id, link.review),
        )

    def get_record_link(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None:
        rows = self._rows("SELECT * FROM record_links WHERE kind = ? AND source = ? AND external_id = ?",
                          (kind.value, source, external_id))
        return _record_link(rows[0]) if rows else None

    def record_links(self, kind: RecordKind | None = None, *, open_only: bool = False) -> list[RecordLink]:
        """``open_only``: restraint episodes without an end (the ones that can hold cameras)."""
        sql, params = "SELECT * FROM record_links", []
        clauses = []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind.value)
        if open_only:
            clauses.append("json_extract(fields, '$.open') = 1")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [_record_link(r) for r in self._rows(sql + " ORDER BY received, external_id", tuple(params))]

    def remember_receipt(self, origin: str, event_id: str, received: datetime) -> bool:
        """False when this (origin, event id) was seen before: a replay."""
        try:
            self._write("INSERT INTO trigger_receipts (origin, event_id, received) VALUES (?, ?, ?)",
                        (origin, event_id, _ts(received)))
        except sqlite3.IntegrityError:
            return False
        return True

    def count_notifications(self, state: str) -> int:
        rows = self._rows(f"SELECT COUNT(*) FROM outbox WHERE {_OUTBOX_STATES[state]}")
        return int(rows[0][0])

    def list_notifications(self, state: str, *, limit: int = 100) -> list[Notification]:
        """Newest first."""
        rows = self._rows(f"SELECT * FROM outbox WHERE {_OUTBOX_STATES[state]} ORDER BY seq DESC LIMIT ?", (limit,))
        return [_notification(r) for r in rows]

    # audit log: batches, checkpoints, keys, verification rows

    def audit_in_transaction(self) -> bool:
        """True when the calling thread is inside ``transaction()`` (an audit append then joins it)."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread holds the connection, so we are not inside a transaction
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    def insert_audit_entries(self, entries: list[AuditEntry]) -> None:
        """Several entries in one statement (group commit); the caller's transaction, if any, holds them.

        One multi-row INSERT is atomic by itself, so inside a transaction it needs no
        savepoint, and it is one step of the statement (executemany would step, and
        release the GIL, once per row)."""
        chunks = [entries[i:i + _INSERT_ROWS] for i in range(0, len(entries), _INSERT_ROWS)]
        with self._lock:
            if self._depth > 0 and len(chunks) == 1:
                self._insert_audit_rows(chunks[0])
                return
            with self.transaction():
                for chunk in chunks:
                    self._insert_audit_rows(chunk)

    def _insert_audit_rows(self, entries: list[AuditEntry]) -> None:
        params = [v for e in entries for v in _audit_row(e)]
        self._conn.execute(_AUDIT_INSERT + ", ".join([_AUDIT_VALUES] * len(entries)), params)

    def audit_chain_rows(self, *, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, str, str, str | None]]:
        """(seq, prev_hash, hash, canonical JSON text or None) in seq order, for fast verification."""
        with self._reading() as conn:
            cur = conn.execute(
                f"SELECT seq, prev_hash, hash, {_CANONICAL_SQL} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            cur.row_factory = None
            return cur.fetchall()

    def audit_chain_page(self, *, after_seq: int = 0, limit: int = 20_000) -> tuple | None:
        """A page of the chain for bulk verification, aggregated by SQLite in one step (the
        GIL is free meanwhile): (rows, last seq, the seqs joined by ',', the prev_hashes and
        the hashes each joined by '', the canonical JSON texts as ``audit_chain_rows`` has
        them joined by '\\n', how many of those there are, how many rows' hashes are not
        64-character text), in seq order; None past the end. Read on a second connection,
        so a long verify neither holds the store's lock nor waits for it."""
        with self._reading() as conn:
            row = conn.execute(_CHAIN_PAGE_SQL, (after_seq, limit)).fetchone()
        return tuple(row) if row and row[0] else None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The read connection (the main one for a database in memory, or for a thread
        inside a transaction, which must see its own writes)."""
        if self._path is None or self.audit_in_transaction():
            with self._lock:
                yield self._conn
            return
        with self._read_lock:
            if self._read_conn is None:
                self._read_conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                                  timeout=10, cached_statements=16)
                self._read_conn.execute("PRAGMA query_only=1")
            yield self._read_conn

    def insert_audit_checkpoint(self, cp: Checkpoint) -> bool:
        """False if a checkpoint at that seq exists already (another process signed it first)."""
        try:
            self._write(_insert_sql("audit_checkpoints", _CHECKPOINT_COLUMNS),
                        tuple(getattr(cp, c) for c in _CHECKPOINT_COLUMNS))
        except sqlite3.IntegrityError:
            return False
        return True

    def last_audit_checkpoint(self) -> Checkpoint | None:
        rows = self._rows("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
        return Checkpoint(**{c: rows[0][c] for c in _CHECKPOINT_COLUMNS}) if rows else None

    def audit_checkpoints(self, *, after_seq: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = self._rows("SELECT * FROM audit_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [Checkpoint(**{c: r[c] for c in _CHECKPOINT_COLUMNS}) for r in rows]

    def insert_audit_key(self, key: AuditKey) -> None:
        """Records a node's public key; a key already recorded is left as it is."""
        self._write("INSERT OR IGNORE INTO audit_keys (key_id, node, public_key, created) VALUES (?, ?, ?, ?)",
                    (key.key_id, key.node, key.public_key, key.created))

    def audit_keys(self) -> list[AuditKey]:
        rows = self._rows("SELECT key_id, node, public_key, created FROM audit_keys ORDER BY created, key_id")
        return [AuditKey(r["key_id"], r["node"], r["public_key"], r["created"]) for r in rows]


def _emergency_row(e: Emergency) -> tuple:
    return (
        e.id, e.building, e.state.value, e.action.value, e.incident_type.value, int(e.drill), e.threat_basis,
        e.declared_by, _ts(e.declared_at), _ts(e.confirm_deadline), _ts(e.activated_at), _ts(e.expires_at),
        _ts(e.ended_at), e.end_reason, e.trigger.value, e.activation.value,
        _pending_json(e.pending_extension), e.extensions,
    )


def _record_link(r: sqlite3.Row) -> RecordLink:
    return RecordLink(RecordKind(r["kind"]), r["source"], r["external_id"], r["building"], json.loads(r["fields"]),
                      _dt(r["received"]), _dt(r["updated"]), r["emergency_id"], r["review"])


def _request_row(r: AccessRequest) -> tuple:
    return (r.id, r.building, r.requested_by, r.agency, r.call_type, r.reason, r.action.value, r.incident_type.value,
            _ts(r.created), r.state.value, r.decided_by, _ts(r.decided_at), r.decision_reason, r.emergency_id)


def _request(r: sqlite3.Row) -> AccessRequest:
    return AccessRequest(
        id=r["id"], building=r["building"], requested_by=r["requested_by"], agency=r["agency"],
        call_type=r["call_type"], reason=r["reason"], action=Action(r["action"]),
        incident_type=IncidentType(r["incident_type"]), created=_dt(r["created"]), state=RequestState(r["state"]),
        decided_by=r["decided_by"], decided_at=_dt(r["decided_at"]), decision_reason=r["decision_reason"],
        emergency_id=r["emergency_id"],
    )


def _pending_json(p: PendingExtension | None) -> str | None:
    if p is None:
        return None
    return json.dumps({"minutes": p.minutes, "reason": p.reason, "requested_by": p.requested_by,
                       "requested_at": _ts(p.requested_at)})


def _pending(text: str | None) -> PendingExtension | None:
    if not text:
        return None
    d = json.loads(text)
    return PendingExtension(d["minutes"], d["reason"], d["requested_by"], _dt(d["requested_at"]))


def _emergency(r: sqlite3.Row) -> Emergency:
    return Emergency(
        id=r["id"], building=r["building"], state=State(r["state"]), action=Action(r["action"]),
        incident_type=IncidentType(r["incident_type"]), drill=bool(r["drill"]), threat_basis=r["threat_basis"],
        declared_by=r["declared_by"], declared_at=_dt(r["declared_at"]), confirm_deadline=_dt(r["confirm_deadline"]),
        activated_at=_dt(r["activated_at"]), expires_at=_dt(r["expires_at"]), ended_at=_dt(r["ended_at"]),
        end_reason=r["end_reason"], trigger=Trigger(r["trigger"]), activation=Activation(r["activation"]),
        pending_extension=_pending(r["pending_extension"]), extensions=r["extensions"],
    )


def _grant_row(g: Grant) -> tuple:
    return (
        g.id, g.emergency_id, g.agency, json.dumps(sorted(g.camera_ids)), _ts(g.starts), _ts(g.expires),
        _ts(g.ended_at), g.end_reason,
    )


def _grant(r: sqlite3.Row) -> Grant:
    return Grant(
        id=r["id"], emergency_id=r["emergency_id"], agency=r["agency"],
        camera_ids=frozenset(json.loads(r["camera_ids"])),
        starts=_dt(r["starts"]), expires=_dt(r["expires"]), ended_at=_dt(r["ended_at"]), end_reason=r["end_reason"],
    )


_DETAILS_TEXT = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_AUDIT_INSERT = f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)}) VALUES "
_AUDIT_VALUES = "(" + ", ".join("?" * len(_AUDIT_COLUMNS)) + ")"
_INSERT_ROWS = 1000  # rows per INSERT statement: 14,000 parameters (SQLite >= 3.32 allows 32,766)
if sqlite3.sqlite_version_info < (3, 32, 0):
    _INSERT_ROWS = 999 // len(_AUDIT_COLUMNS)


def _audit_row(e: AuditEntry) -> tuple:
    """Details are stored as compact sorted JSON, the very text the entry's hash covers,
    so verification can hash what is stored (rows written before this stored
    ``", "``-separated JSON; they verify through the slower parse-and-redump path)."""
    return (e.seq, e.ts, e.node, e.event_type, e.actor_id, e.actor_role, e.actor_agency, e.object, e.outcome,
            e.source, e.reason, _DETAILS_TEXT(e.details), e.prev_hash, e.hash)


# The entry's canonical JSON (AuditEntry.canonical()) built by SQLite from the stored
# columns: two json_object() calls (keys in sorted order) around the stored details text,
# the same text as json_quote() of each column concatenated, in a third of the time.
# json_object leaves non-ASCII unescaped where Python escapes it, so for such rows this
# text does not hash to the stored hash and the verifier re-derives it in Python.
_CANONICAL_SQL = (
    """rtrim(json_object('actor_agency',actor_agency,'actor_id',actor_id,'actor_role',actor_role),'}')"""
    """||',"details":'||details||','"""
    """||ltrim(json_object('event_type',event_type,'node',node,'object',object,'outcome',outcome,"""
    """'prev_hash',prev_hash,'reason',reason,'seq',seq,'source',source,'ts',ts),'{')"""
)
# One page of the chain aggregated in a single step (the subquery's LIMIT keeps it from
# being flattened, so the canonical text is built once per row). The last two columns
# let the verifier see that the joined texts stand for the rows exactly: every canonical
# text is there (a newline in one shows when splitting), and "odd" counts hashes that
# are not 64-character text.
_CHAIN_PAGE_SQL = f"""
SELECT count(*), max(seq), group_concat(seq, ','), group_concat(prev_hash, ''), group_concat(hash, ''),
       group_concat(c, char(10)), count(c),
       sum(typeof(prev_hash) != 'text' OR typeof(hash) != 'text' OR length(prev_hash) != 64 OR length(hash) != 64)
FROM (SELECT seq, prev_hash, hash, {_CANONICAL_SQL} AS c FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?)
"""
_CHECKPOINT_COLUMNS = ("seq", "hash", "count", "ts", "node", "key_id", "signature")


def _audit_entry(r: sqlite3.Row) -> AuditEntry:
    values = {c: r[c] for c in _AUDIT_COLUMNS}
    values["details"] = json.loads(values["details"])
    return AuditEntry(**values)


_OUTBOX_STATES = {
    "pending": "delivered_at IS NULL AND dead_at IS NULL",
    "delivered": "delivered_at IS NOT NULL",
    "dead": "dead_at IS NOT NULL",
}


def _notification_row(n: Notification) -> tuple:
    return (
        n.id, n.topic, n.subscriber, json.dumps(n.payload, sort_keys=True), _ts(n.created), n.attempts,
        _ts(n.next_attempt), _ts(n.delivered_at), _ts(n.dead_at), n.last_error,
    )


def _notification(r: sqlite3.Row) -> Notification:
    return Notification(
        id=r["id"], topic=r["topic"], payload=json.loads(r["payload"]), created=_dt(r["created"]),
        attempts=r["attempts"], next_attempt=_dt(r["next_attempt"]), delivered_at=_dt(r["delivered_at"]),
        last_error=r["last_error"], subscriber=r["subscriber"], dead_at=_dt(r["dead_at"]),
    )
