"""PostgreSQL storage for emergencies, grants and the audit log (the scale-out option).

The same methods and semantics as :class:`emergency.sqlite_store.SqliteStore` (both
run :class:`emergency.sql_store.SqlStore`'s), so EmergencyService, AuditLog, Outbox and
AccessRequests run on it unchanged.

Choices worth knowing:
- One connection shared by threads behind a lock (like SqliteStore); a connection found
  broken (server restart, terminated backend) is replaced before the next outermost
  operation. Calls block the caller for a network round trip: the gateway calls the
  store from its event loop, as it does with SQLite.
- ``transaction()`` nests with savepoints. The outermost one takes a transaction-level
  advisory lock (``WRITER_LOCK``), the equivalent of SQLite's ``BEGIN IMMEDIATE``:
  writers on every connection and every gateway node are serialised, so the audit
  chain's read-last-then-append and the emergency rules see a stable state. Every
  write goes through ``transaction()``, so a failed statement inside an outer
  transaction rolls back only its own savepoint (PostgreSQL would otherwise abort the
  whole transaction, where SQLite carries on).
- Times are ``timestamptz`` (UTC session time zone; read back as aware UTC datetimes).
  The audit log keeps its fields exactly as hashed: ``ts`` and ``details`` are text,
  so ``AuditLog.verify()`` recomputes identical hashes (jsonb would reorder keys and
  rewrite numbers like 1e20).
- The schema comes from :mod:`emergency.migrations`: opening an empty database brings
  it to the head revision; any other must be at head already (``sightline db upgrade``).
- audit_log refuses UPDATE, DELETE (row triggers) and TRUNCATE (statement trigger);
  opening the store recreates dropped triggers (:mod:`emergency.migrations.guards`). A
  role that owns the table can still drop them: the hash chain catches what happens then.
- PostgreSQL text cannot hold NUL characters. In audit_log an entry whose text fields
  hold one is stored with those fields JSON-encoded and ``nul_escaped`` set, and read
  back exactly (the audit record is never lost); elsewhere such a value is refused as
  ``Invalid``.
- Needs PostgreSQL 14 or later (``CREATE OR REPLACE TRIGGER``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from emergency import migrations
from emergency.audit import AuditEntry
from emergency.errors import Invalid
from emergency.migrations import guards
from emergency.sql_store import AUDIT_COLUMNS, Params, Row, SqlStore, insert_sql

# pg_advisory_xact_lock key serialising writers ("sightlin" as a big-endian int64).
WRITER_LOCK = int.from_bytes(b"sightlin", "big", signed=True)
SCHEMA_LOCK = migrations.SCHEMA_LOCK

_AUDIT_TEXT = tuple(c for c in AUDIT_COLUMNS if c != "seq")


def _pg(sql: str) -> str:
    """A shared statement with psycopg's placeholders (none holds a literal ``?``)."""
    return sql.replace("?", "%s")


def _utc(t: datetime | None) -> datetime | None:
    return t.astimezone(UTC) if t else None


def _parsed(value: Any) -> Any:
    """psycopg hands json and jsonb columns over parsed."""
    return value


def _refuse_nul(params: Params) -> None:
    for value in params:
        if isinstance(value, str) and "\x00" in value:
            raise Invalid("text must not contain NUL characters")


class PgStore(SqlStore):
    """One connection shared by threads behind a lock; outermost transactions take the
    writer advisory lock (see the module notes)."""

    _conn: psycopg.Connection[dict[str, Any]]
    _constraint_error = psycopg.IntegrityError
    _duplicate_error = psycopg.errors.UniqueViolation
    _BYTEWISE = '"C"'
    _OPEN_RECORD = None  # record_links filters the parsed fields, as json_extract does in SQLite
    _ts = staticmethod(_utc)
    _dt = staticmethod(_utc)
    _from_json = staticmethod(_parsed)

    def __init__(self, url: str, *, connect_timeout: float = 10) -> None:
        super().__init__()
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        try:
            migrations.ensure_postgres(self._conn, url, "the PostgreSQL database")
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in guards.POSTGRES:
                    self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(1, int(self._connect_timeout)),
            application_name="sightline",
        )
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def _ensure_connected(self) -> None:
        if self._conn.closed or self._conn.broken:
            try:
                self._conn.close()
            finally:
                self._conn = self._connect()

    def _begin(self) -> None:
        self._ensure_connected()
        self._conn.execute("BEGIN")
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        except BaseException:
            self._undo("ROLLBACK")
            raise

    def _undo(self, *statements: str) -> None:
        """Undo after an error without hiding it: a broken connection has nothing to undo."""
        if self._conn.broken or self._conn.closed:
            return
        for sql in statements:
            self._conn.execute(sql)

    def _rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self._lock:
            if self._depth == 0:
                self._ensure_connected()
            return self._conn.execute(_pg(sql), params).fetchall()

    def _write(self, sql: str, params: Params) -> int:
        _refuse_nul(params)
        with self.transaction():
            return self._conn.execute(_pg(sql), params).rowcount

    def _storable(self, text: str | None) -> str | None:
        return text.replace("\x00", "\ufffd") if text else text

    # audit log: NUL escaping, batches and verification rows

    def insert_audit_entries(self, entries: list[AuditEntry]) -> None:
        """Several entries in one round trip (group commit); the caller's transaction, if any, holds them."""
        with self.transaction():
            with self._conn.cursor() as cur:
                cur.executemany(_AUDIT_INSERT, [self._audit_row(e) for e in entries])

    def _audit_row(self, e: AuditEntry) -> Params:
        """As SQLite stores it, but with the text fields JSON-encoded, and nul_escaped set,
        when any holds a NUL character."""
        values = dict(zip(AUDIT_COLUMNS, super()._audit_row(e), strict=True))
        escaped = any(isinstance(values[c], str) and "\x00" in values[c] for c in _AUDIT_TEXT)
        if escaped:
            values.update({c: json.dumps(values[c]) for c in _AUDIT_TEXT if values[c] is not None})
        return (*values.values(), escaped)

    def _audit_fields(self, r: Row) -> dict[str, Any]:
        values = super()._audit_fields(r)
        if r["nul_escaped"]:
            values.update({c: json.loads(values[c]) for c in _AUDIT_TEXT if values[c] is not None})
        return values

    def audit_chain_rows(self, *, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, str, str, str | None]]:
        """(seq, prev_hash, hash, canonical JSON text or None) in seq order, for fast verification
        (None for a NUL-escaped row: the verifier re-derives its text from ``audit_entries``)."""
        rows = self._rows(
            f"SELECT seq, prev_hash, hash, nul_escaped, {_CANONICAL_SQL} AS c FROM audit_log"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            (r["seq"], r["prev_hash"], r["hash"], r["c"])
            if not r["nul_escaped"]
            else (r["seq"], *(json.loads(r[c]) if c in _AUDIT_TEXT else r[c] for c in ("prev_hash", "hash")), None)
            for r in rows
        ]

    def audit_chain_page(self, *, after_seq: int = 0, limit: int = 20_000) -> Params | None:
        """A page of the chain for bulk verification, aggregated by the server (as
        ``SqliteStore.audit_chain_page``): (rows, last seq, seqs joined by ',', prev_hashes
        and hashes each joined by '', canonical texts joined by '\\n', how many of those,
        how many hashes are not 64 characters); None past the end."""
        rows = self._rows(_CHAIN_PAGE_SQL, (after_seq, limit))
        if not rows or not rows[0]["n"]:
            return None
        r = rows[0]
        return (r["n"], r["last"], r["seqs"], r["prevs"], r["hashes"], r["texts"], r["texts_n"], r["odd"])


_AUDIT_INSERT = _pg(insert_sql("audit_log", (*AUDIT_COLUMNS, "nul_escaped")))


def _json_text(column: str) -> str:
    return f"coalesce(to_json({column})::text, 'null')"


# The entry's canonical JSON (AuditEntry.canonical()) built by the server from the stored
# columns; to_json leaves non-ASCII unescaped where Python escapes it, so for such rows
# the text does not hash to the stored hash and the verifier re-derives it in Python.
_CANONICAL_SQL = (
    "CASE WHEN nul_escaped THEN NULL ELSE "
    + " || ".join(
        f"'{',' if i else '{'}\"{c}\":' || "
        + ("details" if c == "details" else "seq::text" if c == "seq" else _json_text(c))
        for i, c in enumerate(sorted(c for c in AUDIT_COLUMNS if c != "hash"))
    )
    + " || '}' END"
)
_CHAIN_PAGE_SQL = f"""
SELECT count(*) AS n, max(seq) AS last, string_agg(seq::text, ',' ORDER BY seq) AS seqs,
       string_agg(prev_hash, '' ORDER BY seq) AS prevs, string_agg(hash, '' ORDER BY seq) AS hashes,
       string_agg(c, E'\\n' ORDER BY seq) AS texts, count(c) AS texts_n,
       coalesce(sum(CASE WHEN length(prev_hash) != 64 OR length(hash) != 64 THEN 1 ELSE 0 END), 0) AS odd
FROM (SELECT seq, prev_hash, hash, {_CANONICAL_SQL} AS c FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?) page
"""
