"""PostgreSQL storage for emergencies, grants and the audit log (the scale-out option).

The same methods and semantics as :class:`emergency.sqlite_store.SqliteStore`, so
EmergencyService, AuditLog, Outbox and AccessRequests run on it unchanged.

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
- audit_log refuses UPDATE, DELETE (row triggers) and TRUNCATE (statement trigger);
  opening the store recreates dropped triggers. A role that owns the table can still
  drop them: the hash chain catches what happens then.
- PostgreSQL text cannot hold NUL characters. In audit_log an entry whose text fields
  hold one is stored with those fields JSON-encoded and ``nul_escaped`` set, and read
  back exactly (the audit record is never lost); elsewhere such a value is refused as
  ``Invalid``.
- Needs PostgreSQL 14 or later (``CREATE OR REPLACE TRIGGER``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from emergency.audit import AuditEntry
from emergency.checkpoints import AuditKey, Checkpoint
from emergency.errors import Conflict, Invalid
from emergency.model import Action, Activation, Emergency, Grant, IncidentType, PendingExtension, State, Trigger
from emergency.outbox import Notification
from emergency.records import RecordKind, RecordLink
from emergency.requests import AccessRequest, RequestState

# pg_advisory_xact_lock key serialising writers ("sightlin" as a big-endian int64).
WRITER_LOCK = int.from_bytes(b"sightlin", "big", signed=True)
SCHEMA_LOCK = WRITER_LOCK + 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS emergencies (
    id TEXT COLLATE "C" PRIMARY KEY,
    building TEXT NOT NULL,
    state TEXT NOT NULL,
    action TEXT NOT NULL,
    incident_type TEXT NOT NULL,
    drill BOOLEAN NOT NULL,
    threat_basis TEXT,
    declared_by TEXT NOT NULL,
    declared_at TIMESTAMPTZ NOT NULL,
    confirm_deadline TIMESTAMPTZ NOT NULL,
    activated_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    end_reason TEXT,
    trigger TEXT NOT NULL DEFAULT 'panel',
    activation TEXT NOT NULL DEFAULT 'window',
    pending_extension JSON,
    extensions INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS emergencies_one_open_per_building
    ON emergencies (building) WHERE state IN ('pending', 'active');

CREATE TABLE IF NOT EXISTS grants (
    id TEXT COLLATE "C" PRIMARY KEY,
    emergency_id TEXT NOT NULL REFERENCES emergencies (id),
    agency TEXT NOT NULL,
    camera_ids JSONB NOT NULL,
    starts TIMESTAMPTZ NOT NULL,
    expires TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    end_reason TEXT
);
CREATE INDEX IF NOT EXISTS grants_by_emergency ON grants (emergency_id);
CREATE INDEX IF NOT EXISTS grants_unended ON grants (agency) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
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
    hash TEXT NOT NULL,
    nul_escaped BOOLEAN NOT NULL DEFAULT false
);
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE OR REPLACE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Ed25519-signed checkpoints of the audit chain and the nodes' public keys; append-only too.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    count BIGINT NOT NULL,
    ts TEXT NOT NULL,
    node TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_keys (
    key_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE OR REPLACE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON audit_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE IF NOT EXISTS outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    payload JSON NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    dead_at TIMESTAMPTZ,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending_by_subscriber
    ON outbox (subscriber, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;

CREATE TABLE IF NOT EXISTS access_requests (
    id TEXT COLLATE "C" PRIMARY KEY,
    building TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    agency TEXT,
    call_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    incident_type TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    decision_reason TEXT,
    emergency_id TEXT
);

-- Links to records kept in the district's own systems (threats, restraint episodes, reports).
CREATE TABLE IF NOT EXISTS record_links (
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    building TEXT NOT NULL,
    fields JSON NOT NULL,
    received TIMESTAMPTZ NOT NULL,
    updated TIMESTAMPTZ NOT NULL,
    emergency_id TEXT,
    review TEXT,
    PRIMARY KEY (kind, source, external_id)
);

-- Signed webhook deliveries already acted on: a replayed one is refused.
CREATE TABLE IF NOT EXISTS trigger_receipts (
    origin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (origin, event_id)
);
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
_GRANT_COLUMNS = ("id", "emergency_id", "agency", "camera_ids", "starts", "expires", "ended_at", "end_reason")
_OUTBOX_COLUMNS = (
    "id", "topic", "subscriber", "payload", "created", "attempts", "next_attempt", "delivered_at", "dead_at",
    "last_error",
)
_AUDIT_COLUMNS = (
    "seq", "ts", "node", "event_type", "actor_id", "actor_role", "actor_agency", "object", "outcome",
    "source", "reason", "details", "prev_hash", "hash",
)
_AUDIT_TEXT = tuple(c for c in _AUDIT_COLUMNS if c != "seq")


def _ts(t: datetime | None) -> datetime | None:
    return t.astimezone(UTC) if t else None


def _dt(t: datetime | None) -> datetime | None:
    return t.astimezone(UTC) if t else None


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in columns[1:])} WHERE id = %s"


def _refuse_nul(params: tuple) -> None:
    for value in params:
        if isinstance(value, str) and "\x00" in value:
            raise Invalid("text must not contain NUL characters")


class PgStore:
    """One connection shared by threads behind a lock; outermost transactions take the
    writer advisory lock (see the module notes)."""

    def __init__(self, url: str, *, connect_timeout: float = 10) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = self._connect()
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self._conn.execute(SCHEMA)

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._url, autocommit=True, row_factory=dict_row,
                               connect_timeout=max(1, int(self._connect_timeout)),
                               application_name="sightline")
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def _ensure_connected(self) -> None:
        if self._conn.closed or self._conn.broken:
            try:
                self._conn.close()
            finally:
                self._conn = self._connect()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            savepoint = f"sp{self._depth}"
            if self._depth == 0:
                self._ensure_connected()
                self._conn.execute("BEGIN")
                try:
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                except BaseException:
                    self._quiet("ROLLBACK")
                    raise
            else:
                self._conn.execute(f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._quiet("ROLLBACK")
                else:
                    self._quiet(f"ROLLBACK TO SAVEPOINT {savepoint}", f"RELEASE SAVEPOINT {savepoint}")
                raise
            self._depth -= 1
            self._conn.execute("COMMIT" if self._depth == 0 else f"RELEASE SAVEPOINT {savepoint}")

    def _quiet(self, *statements: str) -> None:
        """Undo after an error without hiding it: a broken connection has nothing to undo."""
        if self._conn.broken or self._conn.closed:
            return
        for sql in statements:
            self._conn.execute(sql)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            if self._depth == 0:
                self._ensure_connected()
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple) -> int:
        _refuse_nul(params)
        with self.transaction():
            return self._conn.execute(sql, params).rowcount

    # emergencies

    def insert_emergency(self, e: Emergency) -> None:
        try:
            self._write(_insert_sql("emergencies", _EMERGENCY_COLUMNS), _emergency_row(e))
        except psycopg.IntegrityError as exc:
            raise Conflict(f"building {e.building!r} already has an open emergency") from exc

    def update_emergency(self, e: Emergency) -> None:
        row = _emergency_row(e)
        if self._write(_update_sql("emergencies", _EMERGENCY_COLUMNS), row[1:] + row[:1]) != 1:
            raise KeyError(e.id)

    def get_emergency(self, emergency_id: str) -> Emergency | None:
        rows = self._rows("SELECT * FROM emergencies WHERE id = %s", (emergency_id,))
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
        rows = self._rows("SELECT * FROM grants WHERE id = %s", (grant_id,))
        return _grant(rows[0]) if rows else None

    def grants_of_emergency(self, emergency_id: str) -> list[Grant]:
        rows = self._rows("SELECT * FROM grants WHERE emergency_id = %s ORDER BY starts, id", (emergency_id,))
        return [_grant(r) for r in rows]

    def unended_grants(self, *, agency: str | None = None) -> list[Grant]:
        if agency is None:
            rows = self._rows("SELECT * FROM grants WHERE ended_at IS NULL ORDER BY starts, id")
        else:
            rows = self._rows(
                "SELECT * FROM grants WHERE ended_at IS NULL AND agency = %s ORDER BY starts, id", (agency,)
            )
        return [_grant(r) for r in rows]

    # audit log

    def last_audit_entry(self) -> AuditEntry | None:
        rows = self._rows("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
        return _audit_entry(rows[0]) if rows else None

    def insert_audit_entry(self, entry: AuditEntry) -> None:
        self.insert_audit_entries([entry])

    def insert_audit_entries(self, entries: list[AuditEntry]) -> None:
        """Several entries in one round trip (group commit); the caller's transaction, if any, holds them."""
        with self.transaction():
            with self._conn.cursor() as cur:
                cur.executemany(_insert_sql("audit_log", (*_AUDIT_COLUMNS, "nul_escaped")),
                                [_audit_row(e) for e in entries])

    def audit_in_transaction(self) -> bool:
        """True when the calling thread is inside ``transaction()`` (an audit append then joins it)."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread holds the connection, so we are not inside a transaction
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        rows = self._rows("SELECT * FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit))
        return [_audit_entry(r) for r in rows]

    def audit_chain_rows(self, *, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, str, str, str | None]]:
        """(seq, prev_hash, hash, canonical JSON text or None) in seq order, for fast verification
        (None for a NUL-escaped row: the verifier re-derives its text from ``audit_entries``)."""
        rows = self._rows(f"SELECT seq, prev_hash, hash, nul_escaped, {_CANONICAL_SQL} AS c FROM audit_log"
                          " WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit))
        return [(r["seq"], r["prev_hash"], r["hash"], r["c"]) if not r["nul_escaped"] else
                (r["seq"], *(json.loads(r[c]) if c in _AUDIT_TEXT else r[c] for c in ("prev_hash", "hash")), None)
                for r in rows]

    def audit_chain_page(self, *, after_seq: int = 0, limit: int = 20_000) -> tuple | None:
        """A page of the chain for bulk verification, aggregated by the server (as
        ``SqliteStore.audit_chain_page``): (rows, last seq, seqs joined by ',', prev_hashes
        and hashes each joined by '', canonical texts joined by '\\n', how many of those,
        how many hashes are not 64 characters); None past the end."""
        rows = self._rows(_CHAIN_PAGE_SQL, (after_seq, limit))
        if not rows or not rows[0]["n"]:
            return None
        r = rows[0]
        return (r["n"], r["last"], r["seqs"], r["prevs"], r["hashes"], r["texts"], r["texts_n"], r["odd"])

    def audit_entries_of_type(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        rows = self._rows("SELECT * FROM audit_log WHERE event_type = %s ORDER BY seq DESC LIMIT %s",
                          (event_type, limit))
        return [_audit_entry(r) for r in rows]

    # notification outbox (rows are per notification and subscriber; seq keeps enqueue order)

    def insert_notification(self, n: Notification) -> None:
        self._write(_insert_sql("outbox", _OUTBOX_COLUMNS), _notification_row(n))

    def update_notification(self, n: Notification) -> None:
        """Saves the delivery state (attempts, schedule, outcome); topic and payload never change."""
        sql = (
            "UPDATE outbox SET attempts = %s, next_attempt = %s, delivered_at = %s, dead_at = %s, last_error = %s"
            " WHERE id = %s"
        )
        params = (n.attempts, _ts(n.next_attempt), _ts(n.delivered_at), _ts(n.dead_at),
                  n.last_error.replace("\x00", "\ufffd") if n.last_error else n.last_error, n.id)
        if self._write(sql, params) != 1:
            raise KeyError(n.id)

    def get_notification(self, notification_id: str) -> Notification | None:
        rows = self._rows("SELECT * FROM outbox WHERE id = %s", (notification_id,))
        return _notification(rows[0]) if rows else None

    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        """For each subscriber, its oldest undelivered live notification, if that one is due:
        a subscriber receives its notifications in the order they were enqueued."""
        rows = self._rows(
            "SELECT * FROM outbox WHERE seq IN ("
            "  SELECT MIN(seq) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY subscriber"
            ") AND next_attempt <= %s ORDER BY next_attempt, seq LIMIT %s",
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
        rows = self._rows("SELECT * FROM access_requests WHERE id = %s", (request_id,))
        return _request(rows[0]) if rows else None

    def list_access_requests(self, *, pending_only: bool = False) -> list[AccessRequest]:
        where = "WHERE state = 'pending'" if pending_only else ""
        return [_request(r) for r in self._rows(f"SELECT * FROM access_requests {where} ORDER BY created DESC")]

    def upsert_record_link(self, link: RecordLink) -> None:
        self._write(
            "INSERT INTO record_links (kind, source, external_id, building, fields, received, updated, emergency_id,"
            " review) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (kind, source, external_id) DO UPDATE"
            " SET building = excluded.building, fields = excluded.fields, updated = excluded.updated,"
            " emergency_id = excluded.emergency_id, review = excluded.review",
            (link.kind.value, link.source, link.external_id, link.building, json.dumps(link.fields, sort_keys=True),
             _ts(link.received), _ts(link.updated), link.emergency_id, link.review),
        )

    def get_record_link(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None:
        rows = self._rows("SELECT * FROM record_links WHERE kind = %s AND source = %s AND external_id = %s",
                          (kind.value, source, external_id))
        return _record_link(rows[0]) if rows else None

    def record_links(self, kind: RecordKind | None = None, *, open_only: bool = False) -> list[RecordLink]:
        """``open_only``: restraint episodes without an end (the ones that can hold cameras);
        filtered here like SQLite's ``json_extract(fields, '$.open') = 1`` (true, 1 or 1.0)."""
        sql, params = "SELECT * FROM record_links", ()
        if kind is not None:
            sql, params = sql + " WHERE kind = %s", (kind.value,)
        links = [_record_link(r) for r in self._rows(sql + " ORDER BY received, external_id COLLATE \"C\"", params)]
        return [x for x in links if _is_one(x.fields.get("open"))] if open_only else links

    def remember_receipt(self, origin: str, event_id: str, received: datetime) -> bool:
        """False when this (origin, event id) was seen before: a replay."""
        try:
            self._write("INSERT INTO trigger_receipts (origin, event_id, received) VALUES (%s, %s, %s)",
                        (origin, event_id, _ts(received)))
        except psycopg.errors.UniqueViolation:
            return False
        return True

    # audit checkpoints and signing keys (verification reads entries through audit_entries)

    def insert_audit_checkpoint(self, cp: Checkpoint) -> bool:
        """False if a checkpoint at that seq exists already (another node signed it first)."""
        try:
            self._write(_insert_sql("audit_checkpoints", _CHECKPOINT_COLUMNS),
                        tuple(getattr(cp, c) for c in _CHECKPOINT_COLUMNS))
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def last_audit_checkpoint(self) -> Checkpoint | None:
        rows = self._rows("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
        return Checkpoint(**{c: rows[0][c] for c in _CHECKPOINT_COLUMNS}) if rows else None

    def audit_checkpoints(self, *, after_seq: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = self._rows("SELECT * FROM audit_checkpoints WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, limit))
        return [Checkpoint(**{c: r[c] for c in _CHECKPOINT_COLUMNS}) for r in rows]

    def insert_audit_key(self, key: AuditKey) -> None:
        """Records a node's public key; a key already recorded is left as it is."""
        self._write("INSERT INTO audit_keys (key_id, node, public_key, created) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (key_id) DO NOTHING", (key.key_id, key.node, key.public_key, key.created))

    def audit_keys(self) -> list[AuditKey]:
        rows = self._rows("SELECT key_id, node, public_key, created FROM audit_keys ORDER BY created, key_id")
        return [AuditKey(r["key_id"], r["node"], r["public_key"], r["created"]) for r in rows]

    def count_notifications(self, state: str) -> int:
        rows = self._rows(f"SELECT COUNT(*) AS n FROM outbox WHERE {_OUTBOX_STATES[state]}")
        return int(rows[0]["n"])

    def list_notifications(self, state: str, *, limit: int = 100) -> list[Notification]:
        """Newest first."""
        rows = self._rows(f"SELECT * FROM outbox WHERE {_OUTBOX_STATES[state]} ORDER BY seq DESC LIMIT %s",
                          (limit,))
        return [_notification(r) for r in rows]


def _emergency_row(e: Emergency) -> tuple:
    return (
        e.id, e.building, e.state.value, e.action.value, e.incident_type.value, bool(e.drill), e.threat_basis,
        e.declared_by, _ts(e.declared_at), _ts(e.confirm_deadline), _ts(e.activated_at), _ts(e.expires_at),
        _ts(e.ended_at), e.end_reason, e.trigger.value, e.activation.value,
        _pending_json(e.pending_extension), e.extensions,
    )


def _emergency(r: dict[str, Any]) -> Emergency:
    return Emergency(
        id=r["id"], building=r["building"], state=State(r["state"]), action=Action(r["action"]),
        incident_type=IncidentType(r["incident_type"]), drill=bool(r["drill"]), threat_basis=r["threat_basis"],
        declared_by=r["declared_by"], declared_at=_dt(r["declared_at"]), confirm_deadline=_dt(r["confirm_deadline"]),
        activated_at=_dt(r["activated_at"]), expires_at=_dt(r["expires_at"]), ended_at=_dt(r["ended_at"]),
        end_reason=r["end_reason"], trigger=Trigger(r["trigger"]), activation=Activation(r["activation"]),
        pending_extension=_pending(r["pending_extension"]), extensions=r["extensions"],
    )


def _pending_json(p: PendingExtension | None) -> str | None:
    if p is None:
        return None
    requested_at = p.requested_at.astimezone(UTC).isoformat(timespec="microseconds") if p.requested_at else None
    return json.dumps({"minutes": p.minutes, "reason": p.reason, "requested_by": p.requested_by,
                       "requested_at": requested_at})


def _pending(d: dict | None) -> PendingExtension | None:
    if not d:
        return None
    requested_at = datetime.fromisoformat(d["requested_at"]) if d["requested_at"] else None
    return PendingExtension(d["minutes"], d["reason"], d["requested_by"], requested_at)


def _is_one(value: object) -> bool:
    return isinstance(value, bool | int | float) and value == 1


def _record_link(r: dict[str, Any]) -> RecordLink:
    return RecordLink(RecordKind(r["kind"]), r["source"], r["external_id"], r["building"], r["fields"],
                      _dt(r["received"]), _dt(r["updated"]), r["emergency_id"], r["review"])


def _request_row(r: AccessRequest) -> tuple:
    return (r.id, r.building, r.requested_by, r.agency, r.call_type, r.reason, r.action.value, r.incident_type.value,
            _ts(r.created), r.state.value, r.decided_by, _ts(r.decided_at), r.decision_reason, r.emergency_id)


def _request(r: dict[str, Any]) -> AccessRequest:
    return AccessRequest(
        id=r["id"], building=r["building"], requested_by=r["requested_by"], agency=r["agency"],
        call_type=r["call_type"], reason=r["reason"], action=Action(r["action"]),
        incident_type=IncidentType(r["incident_type"]), created=_dt(r["created"]), state=RequestState(r["state"]),
        decided_by=r["decided_by"], decided_at=_dt(r["decided_at"]), decision_reason=r["decision_reason"],
        emergency_id=r["emergency_id"],
    )


def _grant_row(g: Grant) -> tuple:
    return (
        g.id, g.emergency_id, g.agency, json.dumps(sorted(g.camera_ids)), _ts(g.starts), _ts(g.expires),
        _ts(g.ended_at), g.end_reason,
    )


def _grant(r: dict[str, Any]) -> Grant:
    return Grant(
        id=r["id"], emergency_id=r["emergency_id"], agency=r["agency"], camera_ids=frozenset(r["camera_ids"]),
        starts=_dt(r["starts"]), expires=_dt(r["expires"]), ended_at=_dt(r["ended_at"]), end_reason=r["end_reason"],
    )


def _audit_row(entry: AuditEntry) -> tuple:
    """The entry as stored: details as compact sorted JSON (as SQLite stores them); text
    fields JSON-encoded, with nul_escaped set, when any holds a NUL character."""
    values: dict[str, Any] = {
        c: json.dumps(entry.details, sort_keys=True, separators=(",", ":")) if c == "details" else getattr(entry, c)
        for c in _AUDIT_COLUMNS
    }
    escaped = any(isinstance(values[c], str) and "\x00" in values[c] for c in _AUDIT_TEXT)
    if escaped:
        values.update({c: json.dumps(values[c]) for c in _AUDIT_TEXT if values[c] is not None})
    return (*values.values(), escaped)


_CHECKPOINT_COLUMNS = ("seq", "hash", "count", "ts", "node", "key_id", "signature")


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
        for i, c in enumerate(sorted(c for c in _AUDIT_COLUMNS if c != "hash")))
    + " || '}' END"
)
_CHAIN_PAGE_SQL = f"""
SELECT count(*) AS n, max(seq) AS last, string_agg(seq::text, ',' ORDER BY seq) AS seqs,
       string_agg(prev_hash, '' ORDER BY seq) AS prevs, string_agg(hash, '' ORDER BY seq) AS hashes,
       string_agg(c, E'\\n' ORDER BY seq) AS texts, count(c) AS texts_n,
       coalesce(sum(CASE WHEN length(prev_hash) != 64 OR length(hash) != 64 THEN 1 ELSE 0 END), 0) AS odd
FROM (SELECT seq, prev_hash, hash, {_CANONICAL_SQL} AS c FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s) page
"""


def _audit_entry(r: dict[str, Any]) -> AuditEntry:
    values = {c: r[c] for c in _AUDIT_COLUMNS}
    if r["nul_escaped"]:
        values.update({c: json.loads(values[c]) for c in _AUDIT_TEXT if values[c] is not None})
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


def _notification(r: dict[str, Any]) -> Notification:
    return Notification(
        id=r["id"], topic=r["topic"], payload=r["payload"], created=_dt(r["created"]),
        attempts=r["attempts"], next_attempt=_dt(r["next_attempt"]), delivered_at=_dt(r["delivered_at"]),
        last_error=r["last_error"], subscriber=r["subscriber"], dead_at=_dt(r["dead_at"]),
    )
