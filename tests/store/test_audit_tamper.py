"""The tamper suite: each attack of docs/audit.md's threat model, by someone with write
access to the database (the append-only triggers dropped first) but without the node's
signing key or the witness file, on SQLite and PostgreSQL, with and without the file
mirror. ``sightline audit verify`` (the CLI, a real subprocess) must fail (exit 1) and
name the first bad seq or the missing range.

Set AUDIT_TAMPER_TABLE=path to collect the attack x store x mirror -> verdict table.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from emergency.audit import AuditEntry, AuditEvent
from emergency.audit.checkpoints import Checkpoint
from gateway.config import load_config
from gateway.runtime import open_domain
from tests.conftest_pg import Backend, PostgresBackend, SqliteBackend

N = 20
ROOT = Path(__file__).resolve().parents[2]

KILL_SCRIPT = """
import sys
from gateway.config import load_config
from gateway.runtime import open_domain
from emergency.audit import AuditEvent
store, audit, _ = open_domain(load_config(sys.argv[1]))
n = 0
while True:
    n += 1
    e = audit.append(AuditEvent.VIEW_DENIED, actor_id="officer", object=f"camera:k{n}", outcome="denied")
    print(e.seq, flush=True)
"""


class Site:
    def __init__(self, tmp_path: Path, backend: Backend, mirror: bool) -> None:
        from gateway.cli.demo import sample_site_toml, write_demo_plans

        self.backend = backend
        self.mirror = mirror
        write_demo_plans(tmp_path)
        gateway = 'data_dir = "."'
        if isinstance(backend, PostgresBackend):
            gateway += f'\ndatabase = "{backend.url}"'
        if mirror:
            gateway += '\naudit_mirror = "file:mirror.jsonl"'
        self.path = tmp_path / "site.toml"
        self.path.write_text(sample_site_toml(floor_plans=True).replace('data_dir = "."', gateway, 1))

    def fill(self, n: int = N) -> None:
        store, audit, _ = open_domain(load_config(self.path))
        try:
            for i in range(n):
                audit.append(AuditEvent.VIEW_DENIED, actor_id="officer", object=f"camera:c{i}", outcome="denied")
        finally:
            audit.close()
            store.close()

    def entries(self) -> list[AuditEntry]:
        store = self.backend.open()
        try:
            return store.audit_entries(limit=10_000)
        finally:
            store.close()

    def sql(self, *statements: str | tuple[str, tuple]) -> None:
        self.backend.drop_audit_triggers()
        for t in ("audit_checkpoints_no_update", "audit_checkpoints_no_delete", "audit_checkpoints_no_truncate"):
            if isinstance(self.backend, SqliteBackend):
                self.backend.execute(f"DROP TRIGGER IF EXISTS {t}")
            else:
                self.backend.execute(f"DROP TRIGGER IF EXISTS {t} ON audit_checkpoints")
        for s in statements:
            sql, params = (s, ()) if isinstance(s, str) else s
            self.backend.execute(sql, params)

    def insert(self, entries: list[AuditEntry]) -> None:
        store = self.backend.open()
        try:
            with store.transaction():
                store.insert_audit_entries(entries)
        finally:
            store.close()

    def verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "audit", "verify", "--config", str(self.path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )


def _rehash(entries: list[AuditEntry], prev: str, **change: Any) -> list[AuditEntry]:
    out = []
    for i, e in enumerate(entries):
        e = replace(e, prev_hash=prev, hash="", **(change if i == 0 else {}))
        e = replace(e, hash=e.computed_hash())
        out.append(e)
        prev = e.hash
    return out


def edit(site: Site) -> int:
    site.sql("UPDATE audit_log SET reason = 'granted' WHERE seq = 8")
    return 8


def delete(site: Site) -> int:
    site.sql("DELETE FROM audit_log WHERE seq = 8")
    return 8


def reorder(site: Site) -> int:
    site.sql(
        "UPDATE audit_log SET seq = 0 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = 0",
    )
    return 5


def insert(site: Site) -> int:
    entries = site.entries()
    top = entries[-1].seq
    site.sql(*(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}" for s in range(top, 5, -1)))
    site.insert(_rehash([replace(entries[5], outcome="success")], entries[4].hash))
    return 6


def append_valid_hashes(site: Site) -> int:
    entries = site.entries()
    last = entries[-1]
    forged = [replace(last, seq=last.seq + 1 + i, object=f"camera:forged{i}") for i in range(3)]
    site.sql()
    site.insert(_rehash(forged, last.hash))
    return last.seq + 1


def recompute_after_edit(site: Site) -> int:
    entries = site.entries()
    rewritten = _rehash(entries[7:], entries[6].hash, reason="granted")
    site.sql("DELETE FROM audit_log WHERE seq >= 8", "DELETE FROM audit_checkpoints WHERE seq >= 8")
    site.insert(rewritten)
    return 8


def truncate(site: Site) -> int:
    site.sql("DELETE FROM audit_log WHERE seq > 15", "DELETE FROM audit_checkpoints WHERE seq > 15")
    return 16


def delete_some_checkpoints(site: Site) -> int:
    site.sql("DELETE FROM audit_checkpoints WHERE seq IN (10, 11)")
    return 10


def delete_all_checkpoints(site: Site) -> int:
    site.sql("DELETE FROM audit_checkpoints")
    return 1


def _batches(site: Site, n: int = 3, size: int = 4) -> list[int]:
    """``n`` more genuine batches of ``size`` entries; the seqs of their checkpoints."""
    store, audit, _ = open_domain(load_config(site.path))
    try:
        batch = [{"event_type": AuditEvent.VIEW_DENIED, "actor_id": "officer", "object": "camera:b"}] * size
        done = [audit.append_many(batch)[-1].seq for _ in range(n)]
    finally:
        audit.close()
        store.close()
    return done


def _checkpoint_row(cp: Checkpoint) -> tuple[str, tuple]:
    return (
        "INSERT INTO audit_checkpoints (seq, hash, count, ts, node, key_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cp.seq, cp.hash, cp.count, cp.ts, cp.node, cp.key_id, f"{cp.prev}:{cp.signature}"),
    )


def _checkpoints(site: Site) -> dict[int, Checkpoint]:
    store = site.backend.open()
    try:
        return {cp.seq: cp for cp in store.audit_checkpoints(limit=10_000)}
    finally:
        store.close()


def forged_checkpoint_between_genuine_ones(site: Site) -> int:
    a, b, _ = _batches(site)
    genuine = _checkpoints(site)[a]
    forged = replace(genuine, seq=b - 2, count=2, prev=genuine.link(), signature=base64.b64encode(bytes(64)).decode())
    site.sql(_checkpoint_row(forged))
    return b - 2


def checkpoint_widened_over_forged_rows(site: Site) -> int:
    append_valid_hashes(site)  # 3 forged rows after the head
    (first, *_) = _batches(site, size=1)
    site.sql(f"UPDATE audit_checkpoints SET count = 4 WHERE seq = {first}")
    return first


def delete_a_checkpoint_from_the_middle(site: Site) -> int:
    _, b, _ = _batches(site)
    site.sql(f"DELETE FROM audit_checkpoints WHERE seq = {b}")
    return b  # the witness saw it; without the witness, the next one's link names its batch


ATTACKS: dict[str, Callable[[Site], int]] = {
    "edit": edit,
    "delete": delete,
    "reorder": reorder,
    "insert": insert,
    "append with valid hashes": append_valid_hashes,
    "recompute after edit, delete its checkpoints": recompute_after_edit,
    "truncate tail and its checkpoints": truncate,
    "delete some checkpoints": delete_some_checkpoints,
    "delete all checkpoints": delete_all_checkpoints,
    "forged checkpoint between two genuine ones": forged_checkpoint_between_genuine_ones,
    "genuine checkpoint's count widened over forged rows": checkpoint_widened_over_forged_rows,
    "delete a checkpoint from the middle": delete_a_checkpoint_from_the_middle,
}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    b: Backend
    if request.param == "sqlite":
        b = SqliteBackend(tmp_path / "sightline.db")
    else:
        b = PostgresBackend(request.getfixturevalue("pg_url"))
    yield b
    b.close_all()


def _record(attack: str, site: Site, result: subprocess.CompletedProcess[str]) -> None:
    path = os.environ.get("AUDIT_TAMPER_TABLE")
    if not path:
        return
    said = next((x for x in result.stdout.splitlines() if x.startswith("audit log")), result.stdout[-200:])
    row = {"attack": attack, "store": site.backend.name, "mirror": site.mirror, "rc": result.returncode, "said": said}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _assert_names(result: subprocess.CompletedProcess[str], seq: int) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAILED verification at seq {seq}:" in result.stdout, result.stdout


@pytest.mark.parametrize("mirror", [False, True], ids=["no-mirror", "mirror"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_detected_and_named(tmp_path: Path, backend: Backend, mirror: bool, attack: str) -> None:
    site = Site(tmp_path, backend, mirror)
    site.fill()
    assert site.verify().returncode == 0
    first_bad = ATTACKS[attack](site)
    result = site.verify()
    _record(attack, site, result)
    _assert_names(result, first_bad)


@pytest.mark.parametrize("mirror", [False, True], ids=["no-mirror", "mirror"])
def test_forged_tail_fails_the_second_run_too(tmp_path: Path, backend: Backend, mirror: bool) -> None:
    site = Site(tmp_path, backend, mirror)
    site.fill()
    first_bad = append_valid_hashes(site)
    for _ in range(2):  # each run appends its own audit.verified entry; it copies nothing
        result = site.verify()
        _assert_names(result, first_bad)
    _record("forged tail, second verify run", site, result)


@pytest.mark.parametrize("mirror", [False, True], ids=["no-mirror", "mirror"])
def test_edit_after_kill_9_is_detected(tmp_path: Path, backend: Backend, mirror: bool) -> None:
    site = Site(tmp_path, backend, mirror)
    site.fill(3)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(site.path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while int(proc.stdout.readline() or 0) < 40 and time.monotonic() < deadline:
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    entries = site.entries()
    last = entries[-1]
    (edited,) = _rehash([last], last.prev_hash, reason="granted")
    site.sql(
        (f"DELETE FROM audit_log WHERE seq = {last.seq}", ()),
    )
    site.insert([edited])
    result = site.verify()
    _record("edit the tail after kill -9", site, result)
    _assert_names(result, last.seq)


def test_unmirrored_rows_are_reported_until_acknowledged_through_the_cli(tmp_path: Path) -> None:
    """A mirror added to an existing log never gets the older rows copied in: verify
    reports them on every run until ``sightline audit acknowledge`` (audited)."""
    site = Site(tmp_path, SqliteBackend(tmp_path / "sightline.db"), mirror=False)
    site.fill(5)
    text = site.path.read_text()
    site.path.write_text(
        text.replace(
            'data_dir = "."',
            'data_dir = "."\naudit_mirror = "file:mirror.jsonl"\naudit_witness = "file:elsewhere/witness.jsonl"',
            1,
        )
    )
    for _ in range(2):
        result = site.verify()
        _assert_names(result, 1)
        assert "seq 1–5 are in the database but not in the mirror" in result.stdout
    cli = [sys.executable, "-m", "gateway.cli", "audit", "acknowledge", "--config", str(site.path)]
    refused = subprocess.run([*cli, "--through", "5", "--reason", " "], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2
    ack = subprocess.run(
        [*cli, "--through", "5", "--reason", "mirror added after seq 5"], capture_output=True, text=True, cwd=ROOT
    )
    assert ack.returncode == 0, ack.stderr
    result = site.verify()
    assert result.returncode == 0, result.stdout
    assert "acknowledged through seq 5" in result.stdout
    assert (tmp_path / "elsewhere" / "witness.jsonl").stat().st_mode & 0o777 == 0o600
    (acked,) = [e for e in site.entries() if e.event_type == AuditEvent.AUDIT_MIRROR_ACKNOWLEDGED]
    assert acked.details == {"through": 5, "why": "mirror added after seq 5"} and acked.actor_id.startswith("cli:")


def test_audit_witness_setting(tmp_path: Path) -> None:
    from gateway.config import ConfigError

    site = Site(tmp_path, SqliteBackend(tmp_path / "sightline.db"), mirror=False)
    text = site.path.read_text()
    site.path.write_text(text.replace('data_dir = "."', 'data_dir = "."\naudit_witness = "syslog:"', 1))
    with pytest.raises(ConfigError, match='audit_witness must be "file:PATH"'):
        load_config(site.path)
    site.path.write_text(text.replace('data_dir = "."', 'data_dir = "."\naudit_witness = "file:w/x.jsonl"', 1))
    assert load_config(site.path).audit_witness == f"file:{tmp_path / 'w' / 'x.jsonl'}"
