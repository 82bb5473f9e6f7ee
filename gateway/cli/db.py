"""The database's schema brought to this code's head revision: ``sightline db upgrade``,
and ``serve``/``demo`` at start.

A SQLite file that holds data is copied first (``<db>.before-<revision>-<UTC time>``,
through SQLite's backup API, so a WAL file's pages are in the copy); PostgreSQL is
upgraded in one transaction under the schema lock (take a ``pg_dump`` first if you
want a copy). A database a newer Sightline upgraded is refused, untouched
(:class:`emergency.migrations.SchemaTooNew`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from emergency import migrations
from gateway.config import GatewayConfig


@dataclass(frozen=True)
class Upgraded:
    """What ``upgrade_database`` did, for the operator."""

    database: str
    before: str | None
    after: str
    copy: Path | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def lines(self) -> list[str]:
        lines = [f"database : {self.database}"]
        if self.copy is not None:
            lines.append(f"copy     : {self.copy} (the database as it was before this upgrade)")
        lines.append(f"from     : {migrations.describe(self.before)}")
        lines.append(f"to       : {self.after}" + ("" if self.changed else " (already there: nothing to do)"))
        return lines

    def summary(self) -> str:
        """One line for start-up output, or "" when nothing changed."""
        if not self.changed:
            return ""
        if self.before == migrations.EMPTY:
            return f"database: schema created at revision {self.after} ({self.database})"
        copy = f"; copy of the file as it was: {self.copy}" if self.copy else ""
        return f"database: upgraded from {migrations.describe(self.before)} to {self.after} ({self.database}){copy}"


def upgrade_database(config: GatewayConfig, *, now: datetime | None = None) -> Upgraded:
    """Brings the configured database to head (SQLite: after copying a file that holds data)."""
    if config.database_url:
        # the URL holds no password (the config refuses one): PGPASSWORD or ~/.pgpass gives it
        done = migrations.upgrade_postgres(config.database_url, "the PostgreSQL database")
        return Upgraded(config.database_url, done.before, done.after)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.database
    where = f"the database {path}"
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        before = migrations.sqlite_revision(conn)
        migrations.refuse_unknown(before, where)
        copy = None
        if before not in (migrations.EMPTY, migrations.head()):
            copy = backup_sqlite(conn, path, migrations.head(), now or datetime.now(UTC))
        done = migrations.upgrade_sqlite(conn, where)
    finally:
        conn.close()
    return Upgraded(str(path), done.before, done.after, copy)


def backup_sqlite(conn: sqlite3.Connection, path: Path, revision: str, now: datetime) -> Path:
    """A consistent copy of the database beside it, named for the upgrade it precedes."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.before-{revision}-{stamp}")
    copy = sqlite3.connect(target)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    return target
