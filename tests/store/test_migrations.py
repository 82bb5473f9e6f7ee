"""Schema migrations: a district's database from release 0.1 (before migrations) is
upgraded by ``sightline db upgrade`` with its data, audit chain and append-only triggers
intact; a database a newer Sightline wrote is refused; and the migrations alone, run on
an empty database, give exactly the schema the upgraded release-0.1 database has (so
every schema change after the baseline has to be a migration).

The fixtures in tests/fixtures/release-0.1 were made by its make_fixtures.py with the
code before migrations.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from emergency import migrations
from emergency.migrations import SchemaBehind, SchemaTooNew
from emergency.sqlite_store import SqliteStore
from tests.conftest import free_port
from tests.conftest_pg import drop_database
from tests.system_deps import missing

try:
    import psycopg
except ImportError:  # pragma: no cover - pg_admin_url reports it
    psycopg = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "release-0.1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
NEWER = "9999_from_the_future"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


# the two databases, reached by raw SQL ------------------------------------------------------


class Release:
    """A copy of the release-0.1 site (site file, secrets, database) to upgrade."""

    dialect: str
    errors: tuple[type[BaseException], ...]

    def __init__(self, site_dir: Path) -> None:
        self.site_dir = site_dir
        self.config = site_dir / "site.toml"
        self.expected: dict[str, Any] = EXPECTED[self.dialect]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def schema(self) -> dict[str, list[tuple[Any, ...]]]:
        raise NotImplementedError

    def open_store(self) -> Any:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table but alembic_version, in a stable order."""
        return {t: sorted(self.rows(f"SELECT * FROM {t}"), key=repr) for t in self.tables() if t != "alembic_version"}


class SqliteRelease(Release):
    dialect = "sqlite"
    errors = (sqlite3.DatabaseError,)

    @property
    def path(self) -> Path:
        return self.site_dir / "sightline.db"

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def execute(self, sql: str) -> None:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                conn.execute(sql)
        finally:
            conn.close()

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]

    def schema(self) -> dict[str, list[tuple[Any, ...]]]:
        return sqlite_schema(self.path)

    def open_store(self) -> Any:
        return SqliteStore(self.path)


class PostgresRelease(Release):
    dialect = "postgres"

    def __init__(self, site_dir: Path, url: str) -> None:
        super().__init__(site_dir)
        self.url = url
        self.errors = (psycopg.Error,)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)

    def tables(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]

    def schema(self) -> dict[str, list[tuple[Any, ...]]]:
        return pg_schema(self.url)

    def open_store(self) -> Any:
        from emergency.pg_store import PgStore

        return PgStore(self.url)


def sqlite_schema(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Tables with their columns, indexes with their columns and conditions, triggers."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        tables = [name for kind, name, _, _ in objects if kind == "table"]
        return {
            "tables": sorted(tables),
            "columns": [(t, *c) for t in tables for c in conn.execute(f"PRAGMA table_xinfo({t})")],
            "indexes": [
                (t, *i, [tuple(c) for c in conn.execute(f"PRAGMA index_xinfo({i[1]})")])
                for t in tables
                for i in conn.execute(f"PRAGMA index_list({t})")
            ],
            "index_sql": sorted((name, _words(sql)) for kind, name, _, sql in objects if kind == "index" and sql),
            "triggers": sorted((name, table, _words(sql)) for kind, name, table, sql in objects if kind == "trigger"),
        }
    finally:
        conn.close()


def pg_schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "columns": "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default,"
        " collation_name, is_identity, identity_generation FROM information_schema.columns"
        " WHERE table_schema = 'public'",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE NOT tgisinternal",
        "functions": "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
    }
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: sorted(conn.execute(sql).fetchall(), key=repr) for name, sql in queries.items()}


def _words(sql: str) -> str:
    return " ".join(sql.replace("IF NOT EXISTS ", "").split())


# fixtures -------------------------------------------------------------------------------------


def _copy_site(tmp_path: Path) -> Path:
    site_dir = tmp_path / "site"
    shutil.copytree(
        FIXTURE,
        site_dir,
        ignore=shutil.ignore_patterns("make_fixtures.py", "postgres.sql", "expected.json", "__pycache__"),
    )
    os.chmod(site_dir / "secrets", 0o700)
    return site_dir


def _with_database(site: Path, url: str) -> None:
    text = site.read_text()
    site.write_text(text.replace('data_dir = "."', f'data_dir = "."\ndatabase = "{url}"', 1))


def _load_dump(url: str, dump: Path) -> None:
    psql = shutil.which("psql")
    if psql is None:
        missing("the migration tests load a pg_dump with psql: apt-get install postgresql-client")
    subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(dump)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sqlite_release(tmp_path: Path) -> SqliteRelease:
    return SqliteRelease(_copy_site(tmp_path))


@pytest.fixture
def postgres_release(tmp_path: Path, pg_url: str) -> PostgresRelease:
    site_dir = _copy_site(tmp_path)
    (site_dir / "sightline.db").unlink()
    _with_database(site_dir / "site.toml", pg_url)
    _load_dump(pg_url, FIXTURE / "postgres.sql")
    return PostgresRelease(site_dir, pg_url)


@pytest.fixture(params=["sqlite", "postgres"])
def release(request: pytest.FixtureRequest) -> Release:
    chosen: Release = request.getfixturevalue(f"{request.param}_release")
    return chosen


@pytest.fixture
def second_pg_url(pg_admin_url: str) -> Iterator[str]:
    """Another empty throwaway database, beside ``pg_url``."""
    name = f"sightline_test_{os.urandom(6).hex()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        drop_database(pg_admin_url, name)


# the release-0.1 database upgraded --------------------------------------------------------------


def test_release_01_upgrades_with_data_chain_and_triggers_intact(release: Release) -> None:
    before = release.contents()
    assert "alembic_version" not in release.tables()
    assert len(before["audit_log"]) == release.expected["audit_entries"] >= 300
    assert len(before["audit_checkpoints"]) == release.expected["checkpoints"] > 1

    refused = cli("audit", "verify", "--config", str(release.config))
    assert refused.returncode == 2 and "sightline db upgrade" in refused.stderr, refused.stderr
    assert "alembic_version" not in release.tables(), "opening a store must not upgrade a database with data"

    upgraded = cli("db", "upgrade", "--config", str(release.config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from     : {migrations.PRE_MIGRATIONS}" in upgraded.stdout
    assert f"to       : {migrations.head()}" in upgraded.stdout
    assert release.rows("SELECT version_num FROM alembic_version") == [(migrations.head(),)]
    after = release.contents()
    assert {t: rows for t, rows in after.items() if t in before} == before
    assert all(after[t] == [] for t in after.keys() - before.keys()), "later revisions add only empty tables"

    store = release.open_store()
    try:
        expected = release.expected
        assert {e.id: e.state.value for e in store.list_emergencies()} == expected["emergencies"]
        assert set(expected["emergencies"].values()) == {"active", "closed", "cancelled"}
        grants = {
            g.id: [g.emergency_id, g.agency, sorted(g.camera_ids), g.end_reason]
            for e in store.list_emergencies()
            for g in store.grants_of_emergency(e.id)
        }
        assert grants == expected["grants"]
        assert {r.id: r.state.value for r in store.list_access_requests()} == expected["access_requests"]
        assert [[x.kind.value, x.source, x.external_id] for x in store.record_links()] == expected["record_links"]
        assert store.last_audit_entry().hash == expected["last_audit_hash"]
    finally:
        store.close()

    verify = cli("audit", "verify", "--config", str(release.config))
    assert verify.returncode == 0 and "audit log intact" in verify.stdout, verify.stdout + verify.stderr
    # the release's checkpoints, and the one signing the batch the upgrade itself appended
    assert f"checkpoints : {release.expected['checkpoints'] + 1} checked" in verify.stdout, verify.stdout

    for table in ("audit_log", "audit_checkpoints"):
        with pytest.raises(release.errors, match="append-only"):
            release.execute(f"UPDATE {table} SET ts = ts")
        with pytest.raises(release.errors, match="append-only"):
            release.execute(f"DELETE FROM {table}")
    assert len(release.rows("SELECT seq FROM audit_log")) > release.expected["audit_entries"]

    again = cli("db", "upgrade", "--config", str(release.config))
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout


def test_sqlite_upgrade_keeps_a_copy_of_the_file_first(sqlite_release: SqliteRelease) -> None:
    before = sqlite_release.contents()
    upgraded = cli("db", "upgrade", "--config", str(sqlite_release.config))
    assert upgraded.returncode == 0, upgraded.stderr
    copies = list(sqlite_release.site_dir.glob(f"sightline.db.before-{migrations.head()}-*Z"))
    assert len(copies) == 1 and f"copy     : {copies[0]}" in upgraded.stdout, upgraded.stdout
    conn = sqlite3.connect(copies[0])
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "alembic_version" not in names  # the database as it was
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == len(before["audit_log"])
    finally:
        conn.close()
    assert cli("db", "upgrade", "--config", str(sqlite_release.config)).returncode == 0
    assert len(list(sqlite_release.site_dir.glob("sightline.db.before-*"))) == 1, "no copy when nothing changes"


def test_serve_upgrades_at_start_after_copying_the_file(sqlite_release: SqliteRelease) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(sqlite_release.config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("serve did not answer /healthz within 30 s")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"database: upgraded from {migrations.PRE_MIGRATIONS} to {migrations.head()}" in out, out
    assert "copy of the file as it was" in out
    assert list(sqlite_release.site_dir.glob("sightline.db.before-*"))
    assert sqlite_release.rows("SELECT version_num FROM alembic_version") == [(migrations.head(),)]


# a database newer than the code ------------------------------------------------------------------


def test_a_database_from_a_newer_sightline_is_refused_untouched(release: Release) -> None:
    assert cli("db", "upgrade", "--config", str(release.config)).returncode == 0
    release.execute(f"UPDATE alembic_version SET version_num = '{NEWER}'")
    before = release.contents()

    for args in (("db", "upgrade"), ("serve", "--port", str(free_port())), ("audit", "verify")):
        result = cli(*args, "--config", str(release.config), timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"schema revision {NEWER!r}" in result.stderr, result.stderr
        assert "Install that newer Sightline" in result.stderr, result.stderr

    with pytest.raises(SchemaTooNew, match="newer Sightline"):
        release.open_store()
    assert release.rows("SELECT version_num FROM alembic_version") == [(NEWER,)]
    assert release.contents() == before
    if isinstance(release, SqliteRelease):
        assert len(list(release.site_dir.glob("sightline.db.before-*"))) == 1, "only the first upgrade's copy"


def test_a_store_refuses_a_database_from_before_migrations_without_touching_it(release: Release) -> None:
    before = release.schema()
    with pytest.raises(SchemaBehind, match="sightline db upgrade"):
        release.open_store()
    assert release.schema() == before


# every schema change is a migration ----------------------------------------------------------------


def test_sqlite_migrations_on_an_empty_database_give_the_upgraded_release_schema(
    sqlite_release: SqliteRelease, tmp_path: Path
) -> None:
    assert cli("db", "upgrade", "--config", str(sqlite_release.config)).returncode == 0
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    shutil.copy(sqlite_release.config, empty_dir / "site.toml")
    created = cli("db", "upgrade", "--config", str(empty_dir / "site.toml"))
    assert created.returncode == 0 and "from     : none (an empty database)" in created.stdout, created.stdout
    assert not list(empty_dir.glob("sightline.db.before-*")), "an empty database needs no copy"
    assert sqlite_schema(empty_dir / "sightline.db") == sqlite_release.schema()

    SqliteStore(tmp_path / "opened.db").close()  # a store opening an empty database: the same schema
    assert sqlite_schema(tmp_path / "opened.db") == sqlite_release.schema()


def test_postgres_migrations_on_an_empty_database_give_the_upgraded_release_schema(
    postgres_release: PostgresRelease, second_pg_url: str, tmp_path: Path
) -> None:
    assert cli("db", "upgrade", "--config", str(postgres_release.config)).returncode == 0
    site = tmp_path / "empty.toml"
    site.write_text(postgres_release.config.read_text().replace(postgres_release.url, second_pg_url))
    created = cli("db", "upgrade", "--config", str(site))
    assert created.returncode == 0 and "from     : none (an empty database)" in created.stdout, created.stdout
    at_head = postgres_release.schema()
    assert pg_schema(second_pg_url) == at_head
    PostgresRelease(tmp_path, second_pg_url).open_store().close()  # a store opening adds nothing of its own
    assert pg_schema(second_pg_url) == at_head


def test_a_first_release_sqlite_database_gets_the_columns_release_01_added(
    sqlite_release: SqliteRelease, tmp_path: Path
) -> None:
    """Revision 0001 adopts a database from before migrations by creating only what it
    lacks: for the first release, four columns of ``emergencies`` (with their defaults)."""
    added = ("trigger", "activation", "pending_extension", "extensions")
    for column in reversed(added):
        sqlite_release.execute(f"ALTER TABLE emergencies DROP COLUMN {column}")
    upgraded = cli("db", "upgrade", "--config", str(sqlite_release.config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert sqlite_release.rows(
        "SELECT DISTINCT trigger, activation, pending_extension, extensions FROM emergencies"
    ) == [("panel", "window", None, 0)]
    SqliteStore(tmp_path / "head.db").close()
    assert sqlite_release.schema()["columns"] == sqlite_schema(tmp_path / "head.db")["columns"]


def test_guards_put_back_exactly_the_triggers_the_migrations_made(release: Release) -> None:
    """emergency.migrations.guards must follow the head revision: dropping every guard and
    opening a store gives back the very schema the migrations made."""
    assert cli("db", "upgrade", "--config", str(release.config)).returncode == 0
    at_head = release.schema()
    for table in ("audit_log", "audit_checkpoints", "audit_keys"):
        for verb in ("update", "delete", "truncate"):
            on = " ON " + table if release.dialect == "postgres" else ""
            release.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}{on}")
    if release.dialect == "postgres":
        release.execute("DROP FUNCTION audit_log_append_only()")
    assert release.schema() != at_head
    release.open_store().close()
    assert release.schema() == at_head


PROBE = "probe"
PROBE_REVISION = '''"""A later schema change, for the test: one column more."""

from alembic import op

revision = "{probe}"
down_revision = "{shipped}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE access_requests ADD COLUMN probe TEXT NOT NULL DEFAULT 'added by {probe}'")
'''


@contextmanager
def _knowing_a_later_revision(tmp_path: Path) -> Iterator[str]:
    """Meanwhile this process's code knows one revision more than the shipped ones (their
    head is what it follows, and what the context gives)."""
    from emergency.migrations import runner

    shipped = runner.head()
    scripts = tmp_path / "migrations"
    shutil.copytree(runner.HERE, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "v9000_probe.py").write_text(PROBE_REVISION.format(probe=PROBE, shipped=shipped))
    shipped_dir = runner.HERE
    runner.HERE = scripts
    runner._script.cache_clear()
    runner.known_revisions.cache_clear()
    try:
        yield shipped
    finally:
        runner.HERE = shipped_dir
        runner._script.cache_clear()
        runner.known_revisions.cache_clear()


def test_a_later_revision_upgrades_a_database_at_the_shipped_head_after_a_copy(sqlite_release: SqliteRelease) -> None:
    """The path every later schema change takes: a store refuses the older revision, and
    the upgrade serve runs copies the file, then applies the new revision."""
    assert cli("db", "upgrade", "--config", str(sqlite_release.config)).returncode == 0  # to head, in another process
    first_copy = set(sqlite_release.site_dir.glob("sightline.db.before-*"))
    requests = sqlite_release.rows("SELECT * FROM access_requests")
    from emergency.migrations import runner
    from gateway.cli.db import upgrade_database
    from gateway.config import load_config

    with _knowing_a_later_revision(sqlite_release.site_dir.parent) as shipped:
        assert runner.head() == PROBE
        with pytest.raises(SchemaBehind, match=f"at schema revision {shipped}; this Sightline needs {PROBE}"):
            sqlite_release.open_store()
        done = upgrade_database(load_config(sqlite_release.config))
        assert (done.before, done.after) == (shipped, PROBE)
        assert done.copy is not None and done.copy.name.startswith(f"sightline.db.before-{PROBE}-")
        assert done.copy not in first_copy and done.copy.exists()
        sqlite_release.open_store().close()
    assert sqlite_release.rows("SELECT version_num FROM alembic_version") == [(PROBE,)]
    assert sqlite_release.rows("SELECT * FROM access_requests") == [(*r, f"added by {PROBE}") for r in requests]
    with pytest.raises(SchemaTooNew, match=f"'{PROBE}'"):
        sqlite_release.open_store()  # and the code that knows only the shipped revisions refuses it


def test_revision_0002_adds_the_live_view_tables_and_an_upgraded_store_uses_them(release: Release) -> None:
    """0002 (live view sessions, node heartbeats) on a database from release 0.1: the
    tables are there and a store round-trips a session and a heartbeat through them."""
    from datetime import UTC, datetime

    from emergency.live_views import LiveView

    assert cli("db", "upgrade", "--config", str(release.config)).returncode == 0
    assert {"live_views", "node_heartbeats"} <= set(release.tables())
    started = datetime(2026, 3, 2, 9, 30, 1, 250000, tzinfo=UTC)
    view = LiveView(
        "s1", "node-a", "officer", "officer", "county-sheriff", "hs-front", "sub", "g1", "10.0.0.9", started
    )
    store = release.open_store()
    try:
        store.insert_live_view(view)
        store.record_heartbeat("node-a", started)
        store.record_heartbeat("node-a", started.replace(second=4))
        assert store.live_views("node-a") == [view] and store.live_views("node-b") == []
        assert store.last_heartbeat("node-a") == started.replace(second=4)
        assert store.last_heartbeat("node-b") is None
        assert store.delete_live_view("s1") and not store.delete_live_view("s1")
        assert store.live_views("node-a") == []
    finally:
        store.close()


def test_revision_0004_adds_the_people_table_and_an_upgraded_store_uses_it(release: Release) -> None:
    """0004 (people provisioned at an OpenID Connect sign-in) on a database from release
    0.1: a person is added, then brought up to date without losing when they were first seen."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from emergency.people import Person
    from emergency.site import Role

    assert cli("db", "upgrade", "--config", str(release.config)).returncode == 0
    assert "people" in set(release.tables())
    first = datetime(2026, 3, 2, 9, 30, 1, 250000, tzinfo=UTC)
    person = Person(
        "village-pd:abc", "village-pd", "abc", "Officer Jo", "4471", Role.OFFICER, "village-pd", (), first, first
    )
    later = first.replace(hour=11)
    store = release.open_store()
    try:
        assert store.get_person("village-pd:abc") is None
        store.upsert_person(person)
        assert store.get_person("village-pd:abc") == person
        moved = replace(person, name="Sgt Jo", badge=None, role=Role.DISPATCHER, first_seen=later, last_seen=later)
        store.upsert_person(moved)
        assert store.get_person("village-pd:abc") == replace(moved, first_seen=first)
        admin = Person("d42:p", "d42", "p", "Sam", None, Role.BUILDING_ADMIN, None, ("lincoln-hs",), first, first)
        store.upsert_person(admin)
        assert store.get_person("d42:p") == admin
    finally:
        store.close()


def test_store_open_at_head_skips_alembic(sqlite_release: SqliteRelease, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests open stores thousands of times: at head, opening never runs Alembic."""
    assert cli("db", "upgrade", "--config", str(sqlite_release.config)).returncode == 0
    from emergency.migrations import runner

    def no_alembic(*args: object) -> None:
        raise AssertionError("Alembic ran on a database at head")

    monkeypatch.setattr(runner, "_run_upgrade", no_alembic)
    sqlite_release.open_store().close()
