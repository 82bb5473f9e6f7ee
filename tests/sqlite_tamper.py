"""What a person with write access to a SQLite database does: drop the append-only
triggers, then change rows at will. The audit tests use it to attack the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def tamper(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(db)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER IF EXISTS "{name}"')
        for sql, params in statements:
            conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()
