"""SQLite storage for emergencies, grants and the audit log (the embedded default).

The audit table refuses UPDATE and DELETE through triggers; the hash chain catches
anyone who drops them first. The repository methods are :class:`emergency.sql_store.SqlStore`'s;
this module holds the schema, the connections and what only SQLite does (group commit
in multi-row INSERTs, chain verification aggregated in SQL on a second connection).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emergency.audit import AuditEntry
from emergency.sql_store import AUDIT_COLUMNS, SqlStore, from_iso, iso_utc

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

# Columns added after the first release, with their definitions, for databases made before.
_ADDED_COLUMNS = {
    "emergencies": {
        "trigger": "TEXT NOT NULL DEFAULT 'panel'",
        "activation": "TEXT NOT NULL DEFAULT 'window'",
        "pending_extension": "TEXT",
        "extensions": "INTEGER NOT NULL DEFAULT 0",
    },
}


class SqliteStore(SqlStore):
    """One connection shared by threads behind a lock; writers use BEGIN IMMEDIATE."""

    _constraint_error = sqlite3.IntegrityError
    _duplicate_error = sqlite3.IntegrityError
    _BYTEWISE = "BINARY"
    _OPEN_RECORD = "json_extract(fields, '$.open') = 1"
    _ts = staticmethod(iso_utc)
    _dt = staticmethod(from_iso)
    _from_json = staticmethod(json.loads)

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.row_factory = sqlite3.Row
        text = str(path)
        self._path = None if text in ("", ":memory:") or text.startswith("file::memory:") else text
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
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
        super().close()
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _undo(self, *statements: str) -> None:
        for sql in statements:
            self._conn.execute(sql)

    def _rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple) -> int:
        with self.transaction():
            return self._conn.execute(sql, params).rowcount

    # audit log: group commit and verification rows

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
        params = [v for e in entries for v in self._audit_row(e)]
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


_AUDIT_INSERT = f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) VALUES "
_AUDIT_VALUES = "(" + ", ".join("?" * len(AUDIT_COLUMNS)) + ")"
_INSERT_ROWS = 1000  # rows per INSERT statement: 14,000 parameters (SQLite >= 3.32 allows 32,766)
if sqlite3.sqlite_version_info < (3, 32, 0):
    _INSERT_ROWS = 999 // len(AUDIT_COLUMNS)

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
