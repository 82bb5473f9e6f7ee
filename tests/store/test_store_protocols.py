"""SqlStore (SQLite and PostgreSQL) and the domain tests' MemoryStore implement every
repository protocol of emergency/store.py, as mypy sees it: a method that drifts from its
protocol fails here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
from emergency import store
from emergency.sql_store import SqlStore
from tests.memory_store import MemoryStore


def implements(s: SqlStore | MemoryStore) -> None:
    service: store.ServiceStore = s
    requests: store.RequestStore = s
    records: store.RecordStore = s
    audit: store.AuditLogStore = s
    outbox: store.OutboxRepo = s
    receipts: store.ReceiptRepo = s
    live: store.LiveViewRepo = s
    people: store.PeopleRepo = s
"""


def test_sql_store_implements_the_repository_protocols(tmp_path: Path) -> None:
    assert shutil.which("mypy", path=str(Path(sys.executable).parent)), "mypy is a dev dependency"
    snippet = tmp_path / "store_check.py"
    snippet.write_text(CHECK, encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: errors, perhaps only in other modules
    ours = [line for line in run.stdout.splitlines() if line.startswith(str(snippet))]
    assert ours == [], "\n".join(ours)
