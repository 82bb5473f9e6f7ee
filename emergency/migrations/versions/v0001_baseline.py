"""Baseline: the schema of release 0.1, the last one before migrations, per dialect.

Written to be idempotent (``IF NOT EXISTS``, ``CREATE OR REPLACE``), so a database from
before migrations (tables there, no ``alembic_version``) is adopted by running it: it
finds everything present, creates nothing, and Alembic stamps it 0001. A SQLite
database from before release 0.1 also gets the four ``emergencies`` columns that
release added. The append-only triggers of the audit tables are part of the baseline.

Frozen: never edit it; every later schema change is a new revision.
"""

from __future__ import annotations

import sqlite3

from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SQLITE = """
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

POSTGRES = """
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


# Columns release 0.1 added to a first-release SQLite database (before its indexes name them).
_SQLITE_ADDED_COLUMNS = {
    "emergencies": {
        "trigger": "TEXT NOT NULL DEFAULT 'panel'",
        "activation": "TEXT NOT NULL DEFAULT 'window'",
        "pending_extension": "TEXT",
        "extensions": "INTEGER NOT NULL DEFAULT 0",
    },
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # psycopg itself, without parameters: it runs the script whole and leaves its '%' alone
        driver = bind.connection.driver_connection
        if driver is None:
            raise RuntimeError("no driver connection to run the baseline on")
        driver.execute(POSTGRES)
        return
    for table, columns in _SQLITE_ADDED_COLUMNS.items():
        present = {r[1] for r in bind.exec_driver_sql(f"PRAGMA table_info({table})")}
        for name, definition in columns.items():
            if present and name not in present:
                bind.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
    for statement in sqlite_statements(SQLITE):
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore the copy kept before the upgrade")


def sqlite_statements(script: str) -> list[str]:
    """The script's statements, one each (a trigger's body keeps its semicolons)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements
