"""Alembic's environment: runs the revisions on the connection it is handed.

The stores and ``sightline db upgrade`` hand over a connection
(``config.attributes["connection"]``, see :mod:`emergency.migrations.runner`); a
developer running the ``alembic`` command names a database with ``-x url=...``
(e.g. ``alembic -c emergency/migrations/alembic.ini -x url=sqlite:///dev.db revision -m "..."``).
There is no ORM metadata: revisions are SQL, so autogenerate is not used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection


def _run(connection: Connection) -> None:
    # transactional_ddl: the whole upgrade and its version stamp commit together, on
    # SQLite too (its connection begins with BEGIN IMMEDIATE, see runner.sqlite_engine).
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    handed: Connection | None = context.config.attributes.get("connection")
    if handed is not None:
        _run(handed)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("name the database: alembic -x url=sqlite:///FILE (or postgresql+psycopg://...) ...")
    with create_engine(url).connect() as connection:
        _run(connection)


_main()
