"""Which schema revision a database is at, and bringing it to the head revision.

The schema comes only from the revisions in ``versions/`` (Alembic, raw SQL per
dialect); a new revision is written with
``alembic -c emergency/migrations/alembic.ini -x url=sqlite:///dev.db revision --rev-id 0002 -m "..."``.

A database is one of: empty (no tables), from before migrations (tables, no
``alembic_version``: revision 0001 adopts it), at a revision this code knows (head or
older), or at a revision it does not know (written by a newer Sightline: refused, never
touched). Opening a store (``ensure_*``) creates the schema of an empty database and
checks any other, without touching it: upgrading a database that holds data is left to
``sightline db upgrade``, ``serve`` and ``demo``, which keep a copy first (``upgrade_*``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, pool, text
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent
PRE_MIGRATIONS = "release 0.1 (before migrations)"
# pg_advisory_lock key held while a PostgreSQL schema is made or upgraded ("sightlin" + 1,
# next to the store's writer lock), so nodes starting together upgrade it once.
SCHEMA_LOCK = int.from_bytes(b"sightlin", "big", signed=True) + 1
EMPTY = ""
"""The revision of an empty database (no tables at all)."""


class SchemaError(Exception):
    """The database's schema does not fit this code; the message says what to do."""


class SchemaTooNew(SchemaError):
    """The database is at a revision this code does not know: a newer Sightline wrote it."""


class SchemaBehind(SchemaError):
    """The database holds data at an older revision: ``sightline db upgrade`` first."""


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did: the revision before ("" for an empty database, None for one
    from before migrations) and after."""

    before: str | None
    after: str


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(HERE))


def head() -> str:
    """The newest revision this code knows."""
    current = _script().get_current_head()
    if current is None:
        raise RuntimeError(f"no schema revisions in {HERE / 'versions'}")
    return current


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in _script().walk_revisions())


def describe(revision: str | None) -> str:
    if revision == EMPTY:
        return "none (an empty database)"
    return PRE_MIGRATIONS if revision is None else revision


def refuse_unknown(revision: str | None, where: str) -> None:
    """SchemaTooNew when ``revision`` is not one of ours."""
    if revision is not None and revision != EMPTY and revision not in known_revisions():
        raise SchemaTooNew(
            f"{where} is at schema revision {revision!r}, which this Sightline does not know (it knows up to "
            f"{head()!r}): a newer Sightline upgraded it. Install that newer Sightline (or a later one) and run it "
            "on this database; this version will not touch it."
        )


def _check_opened(revision: str | None, where: str) -> bool:
    """True when the store may create the schema (an empty database); raises when it must not open."""
    if revision == head():
        return False
    refuse_unknown(revision, where)
    if revision == EMPTY:
        return True
    raise SchemaBehind(
        f"{where} is at schema revision {describe(revision)}; this Sightline needs {head()}. Run "
        "`sightline db upgrade --config FILE` (it keeps a copy of a SQLite database first), or start the "
        "gateway with `sightline serve`, which upgrades at start."
    )


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def _run_upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


# SQLite ---------------------------------------------------------------------------------


def sqlite_revision(conn: sqlite3.Connection) -> str | None:
    """The revision; "" for an empty database; None for one from before migrations."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alembic_version" in names:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row:
            return str(row[0])
    return None if names - {"alembic_version"} else EMPTY


def sqlite_engine(conn: sqlite3.Connection) -> Engine:
    """An engine over the store's own connection (so a database in memory works too).
    Its transactions start with BEGIN IMMEDIATE, so DDL is transactional and a second
    process upgrading the same file waits, then finds nothing to do."""
    if conn.isolation_level is not None:
        raise ValueError("the connection must be in autocommit mode (isolation_level=None)")
    engine = create_engine("sqlite://", creator=lambda: conn, poolclass=pool.StaticPool)

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _plain_rows(conn: sqlite3.Connection) -> Iterator[None]:
    """SQLAlchemy reads tuples: the store's row factory is set aside meanwhile."""
    factory = conn.row_factory
    conn.row_factory = None
    try:
        yield
    finally:
        conn.row_factory = factory


def ensure_sqlite(conn: sqlite3.Connection, where: str = "the database") -> None:
    """For a store opening: an empty database gets the schema; any other must be at head."""
    with _plain_rows(conn):
        if _check_opened(sqlite_revision(conn), where):
            _upgrade_sqlite(conn)


def upgrade_sqlite(conn: sqlite3.Connection, where: str = "the database") -> Upgrade:
    """Brings the database to head (refusing one a newer Sightline wrote)."""
    with _plain_rows(conn):
        before = sqlite_revision(conn)
        refuse_unknown(before, where)
        if before != head():
            _upgrade_sqlite(conn)
        return Upgrade(before, head())


def _upgrade_sqlite(conn: sqlite3.Connection) -> None:
    with sqlite_engine(conn).connect() as connection:
        _run_upgrade(connection)


# PostgreSQL -----------------------------------------------------------------------------


def pg_revision(conn: Any) -> str | None:
    """As ``sqlite_revision``, for a psycopg connection (any row factory)."""
    cur = conn.execute(
        "SELECT to_regclass('alembic_version') IS NOT NULL AS versioned, EXISTS (SELECT 1 FROM pg_tables"
        " WHERE schemaname = current_schema() AND tablename <> 'alembic_version') AS tables"
    )
    versioned, tables = _values(cur.fetchone())
    if versioned:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row:
            return str(_values(row)[0])
    return None if tables else EMPTY


def _values(row: Any) -> tuple[Any, ...]:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def pg_engine(url: str, connect_timeout: float = 10) -> Engine:
    """A one-connection engine for a libpq URL (the password comes from PGPASSWORD or
    ~/.pgpass, never from the URL)."""
    import psycopg

    def connect() -> Any:
        return psycopg.connect(
            url, connect_timeout=max(1, int(connect_timeout)), application_name="sightline-migrations"
        )

    return create_engine("postgresql+psycopg://", creator=connect, poolclass=pool.NullPool)


def ensure_postgres(conn: Any, url: str, where: str = "the database") -> None:
    """As ``ensure_sqlite``; ``conn`` is the store's connection, ``url`` for the migration's own."""
    if _check_opened(pg_revision(conn), where):
        upgrade_postgres(url, where)


def upgrade_postgres(url: str, where: str = "the database") -> Upgrade:
    """Brings the database to head under the schema lock (refusing one a newer Sightline wrote)."""
    engine = pg_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            connection.commit()
            try:
                before = pg_revision(connection.connection.driver_connection)
                refuse_unknown(before, where)
                if before != head():
                    _run_upgrade(connection)
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
                connection.commit()
    finally:
        engine.dispose()
    return Upgrade(before, head())
