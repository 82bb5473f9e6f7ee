"""PostgreSQL for the tests (a pytest plugin module, listed in tests/conftest.py).

Each test that asks for ``pg_url`` gets a throwaway database ``sightline_test_<random>``
on the server, dropped at teardown (its connections terminated first); no test ever
touches an existing database.

Which server: ``SIGHTLINE_TEST_PG`` (a libpq URL to a maintenance database, as a role
that may CREATE DATABASE), else postgres@127.0.0.1:5432, else the local Unix socket as
the current user. ``scripts/test`` installs PostgreSQL and starts its cluster. With
``CI=true`` an unreachable server fails the PostgreSQL tests; otherwise they skip,
saying why.

``store_backend`` is parametrized over ``sqlite`` and ``postgres``: store-level tests
written against it run on both.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.system_deps import missing

try:
    import psycopg
except ImportError:  # pragma: no cover - reported by pg_admin_url
    psycopg = None  # type: ignore[assignment]

CANDIDATES = ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql:///postgres")


def _unavailable(why: str) -> None:
    message = (
        f"PostgreSQL tests need a server: {why}. Run scripts/test (it installs and starts one) "
        "or set SIGHTLINE_TEST_PG=postgresql://user@host:port/postgres"
    )
    missing(message)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL to a maintenance database on a reachable server, as a role that may create databases."""
    if psycopg is None:
        _unavailable("the psycopg package is not installed (pip install 'psycopg[binary]')")
    candidates = [os.environ["SIGHTLINE_TEST_PG"]] if os.environ.get("SIGHTLINE_TEST_PG") else list(CANDIDATES)
    errors = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    _unavailable("; ".join(errors))
    raise AssertionError("unreachable")


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test only; dropped afterwards."""
    name = f"sightline_test_{secrets.token_hex(6)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(pg_admin_url, name)
    finally:
        drop_database(pg_admin_url, name)


class Backend:
    """One database reached two ways: through the store under test (``open``, any number
    of times, like restarts or extra nodes) and through a raw driver connection
    (``execute``: what an operator or an intruder with SQL access could do)."""

    name: str
    errors: tuple[type[BaseException], ...]

    def __init__(self) -> None:
        self._stores: list[Any] = []

    def open(self) -> Any:
        store = self._open()
        self._stores.append(store)
        return store

    def close_all(self) -> None:
        for store in self._stores:
            try:
                store.close()
            except Exception:
                pass

    def _open(self) -> Any:
        raise NotImplementedError

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Runs one statement (``?`` placeholders) in its own committed transaction."""
        raise NotImplementedError

    def drop_audit_triggers(self) -> None:
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"
    errors = (sqlite3.DatabaseError,)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _open(self) -> Any:
        from emergency.sqlite_store import SqliteStore

        return SqliteStore(self.path)

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def drop_audit_triggers(self) -> None:
        for name in ("audit_log_no_update", "audit_log_no_delete"):
            self.execute(f"DROP TRIGGER IF EXISTS {name}")


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.errors = (psycopg.Error,)

    def _open(self) -> Any:
        from emergency.pg_store import PgStore

        return PgStore(self.url)

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def drop_audit_triggers(self) -> None:
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_truncate"):
            self.execute(f"DROP TRIGGER IF EXISTS {name} ON audit_log")


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    backend: Backend
    if request.param == "sqlite":
        backend = SqliteBackend(tmp_path / "sightline.db")
    else:
        backend = PostgresBackend(request.getfixturevalue("pg_url"))
    yield backend
    backend.close_all()


@pytest.fixture
def postgres_backend(pg_url: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(pg_url)
    yield backend
    backend.close_all()


OpenStore = Callable[[], Any]
