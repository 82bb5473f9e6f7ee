"""SQLite storage for emergencies, grants and the audit log (the embedded default).

The audit table refuses UPDATE and DELETE through triggers; the hash chain catches
anyone who drops them first. The repository methods are :class:`emergency.sql_store.SqlStore`'s;
this module holds the connections and what only SQLite does (group commit in multi-row
INSERTs, chain verification aggregated in SQL on a second connection). The schema comes
from :mod:`emergency.migrations`: opening an empty database brings it to the head
revision; any other must be at head already (``sightline db upgrade``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emergency import migrations
from emergency.audit import AuditEntry
from emergency.migrations import guards
from emergency.sql_store import AUDIT_COLUMNS, Params, SqlStore, from_iso, iso_utc


class SqliteStore(SqlStore):
    """One connection shared by threads behind a lock; writers use BEGIN IMMEDIATE."""

    _conn: sqlite3.Connection
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
        text = str(path)
        self._path = None if text in ("", ":memory:") or text.startswith("file::memory:") else text
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrations.ensure_sqlite(self._conn, f"the database {text}")
            for statement in guards.SQLITE:
                self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise
        self._conn.row_factory = sqlite3.Row

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

    def _rows(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: Params) -> int:
        with self.transaction():
            return self._conn.execute(sql, params).rowcount

    # audit log: group commit and verification rows

    def insert_audit_entries(self, entries: list[AuditEntry]) -> None:
        """Several entries in one statement (group commit); the caller's transaction, if any, holds them.

        One multi-row INSERT is atomic by itself, so inside a transaction it needs no
        savepoint, and it is one step of the statement (executemany would step, and
        release the GIL, once per row)."""
        chunks = [entries[i : i + _INSERT_ROWS] for i in range(0, len(entries), _INSERT_ROWS)]
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

    def audit_chain_page(self, *, after_seq: int = 0, limit: int = 20_000) -> Params | None:
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
                self._read_conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=10, cached_statements=16
                )
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
