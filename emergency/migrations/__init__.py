"""The database schema as Alembic revisions (``versions/``), for SQLite and PostgreSQL.

:mod:`.runner` tells which revision a database is at and brings it to head;
:mod:`.guards` holds the audit tables' append-only triggers as head has them, which
every store opening puts back if they were dropped.
"""

from .runner import (
    EMPTY,
    PRE_MIGRATIONS,
    SCHEMA_LOCK,
    SchemaBehind,
    SchemaError,
    SchemaTooNew,
    Upgrade,
    describe,
    ensure_postgres,
    ensure_sqlite,
    head,
    pg_revision,
    refuse_unknown,
    sqlite_revision,
    upgrade_postgres,
    upgrade_sqlite,
)

__all__ = [
    "EMPTY",
    "PRE_MIGRATIONS",
    "refuse_unknown",
    "SCHEMA_LOCK",
    "SchemaBehind",
    "SchemaError",
    "SchemaTooNew",
    "Upgrade",
    "describe",
    "ensure_postgres",
    "ensure_sqlite",
    "head",
    "pg_revision",
    "sqlite_revision",
    "upgrade_postgres",
    "upgrade_sqlite",
]
