"""The audit log: hash chain, verification after tampering, and the append-only triggers."""

import hashlib
import json
import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from emergency.audit import GENESIS_HASH, AuditLog
from emergency.clock import FakeClock
from emergency.model import Actor
from emergency.site import Role
from emergency.sqlite_store import SqliteStore

OFFICER = Actor("officer", Role.OFFICER, "village-pd", (), mfa=True)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "audit.db"


@pytest.fixture
def log(db):
    clock = FakeClock(datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
    store = SqliteStore(db)
    audit = AuditLog(store, clock, "node-a")
    for i in range(1, 11):
        audit.append(
            "view.denied",
            actor=OFFICER,
            object=f"camera:c{i}",
            outcome="denied",
            source="10.0.0.1",
            reason="no_live_grant",
            details={"n": i},
        )
        clock.advance(0.5)
    yield audit
    store.close()


def tamper(db, *statements):
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_entry_fields_and_chain(log):
    first, second = log.entries(limit=2)
    assert (first.seq, second.seq) == (1, 2)
    assert first.ts == "2025-03-01T12:00:00.123Z" and second.ts == "2025-03-01T12:00:00.623Z"
    assert (first.node, first.actor_id, first.actor_role, first.actor_agency) == (
        "node-a",
        "officer",
        "officer",
        "village-pd",
    )
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    fields = {k: v for k, v in first.__dict__.items() if k != "hash"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_append_without_actor_and_paging(log):
    e = log.append(
        "gateway.started",
        actor_id="system",
        object="node:node-a",
        details={"when": datetime(2025, 1, 1, tzinfo=UTC), "tags": {"b", "a"}},
    )
    assert (e.seq, e.actor_id, e.actor_role, e.outcome) == (11, "system", None, "success")
    assert e.details == {"when": "2025-01-01T00:00:00+00:00", "tags": ["a", "b"]}
    assert [x.seq for x in log.entries(after_seq=8, limit=2)] == [9, 10]
    with pytest.raises(ValueError):
        log.append("x", outcome="maybe")


def test_clean_log_verifies(log):
    assert log.verify().ok and log.verify().checked == 10
    assert log.verify().first_bad_seq is None


def test_empty_log_verifies(tmp_path):
    store = SqliteStore(tmp_path / "empty.db")
    assert AuditLog(store, FakeClock(), "n").verify().ok


@pytest.mark.parametrize(
    "sql", ["UPDATE audit_log SET reason = 'granted' WHERE seq = 3", "DELETE FROM audit_log WHERE seq = 3"]
)
def test_triggers_refuse_update_and_delete(log, db, sql):
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(sql)
    conn.close()
    assert log.verify().ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("reason", "granted"), ("outcome", "success"), ("details", '{"n":99}'), ("ts", "2025-03-01T11:00:00.000Z")],
)
def test_edited_field_is_caught(log, db, column, value):
    tamper(db, (f"UPDATE audit_log SET {column} = ? WHERE seq = 4", (value,)))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and result.checked == 4


def test_edit_with_recomputed_hash_breaks_the_next_link(log, db):
    entry = log.entries(after_seq=3, limit=1)[0]
    forged = entry.__class__(**{**entry.__dict__, "reason": "granted", "hash": ""})
    tamper(db, ("UPDATE audit_log SET reason = 'granted', hash = ? WHERE seq = 4", (forged.computed_hash(),)))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5 and "prev_hash" in result.problem


def test_deleted_entry_is_caught(log, db):
    tamper(db, ("DELETE FROM audit_log WHERE seq = 6", ()))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 6 and "missing" in result.problem


def test_swapped_seqs_are_caught(log, db):
    tamper(
        db,
        ("UPDATE audit_log SET seq = -1 WHERE seq = 3", ()),
        ("UPDATE audit_log SET seq = 3 WHERE seq = 7", ()),
        ("UPDATE audit_log SET seq = 7 WHERE seq = -1", ()),
    )
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3


def _forge(log, seq, prev_hash):
    template = log.entries(limit=1)[0]
    forged = template.__class__(
        **{
            **template.__dict__,
            "seq": seq,
            "prev_hash": prev_hash,
            "event_type": "view.started",
            "outcome": "success",
            "hash": "",
        }
    )
    forged = forged.__class__(**{**forged.__dict__, "hash": forged.computed_hash()})
    row = {**forged.__dict__, "details": json.dumps(forged.details)}
    cols = ", ".join(row)
    return (f"INSERT INTO audit_log ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def test_forged_entry_appended_with_a_bad_link_is_caught(log, db):
    tamper(db, _forge(log, 11, "f" * 64))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 11


def test_forged_entry_inserted_in_the_middle_is_caught(log, db):
    prev = log.entries(after_seq=4, limit=1)[0]
    shift = [(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(10, 5, -1)]
    tamper(db, *shift, _forge(log, 6, prev.hash))
    result = log.verify()
    # the forger chained seq 6 correctly, so the break shows at the entry after it
    assert not result.ok and result.first_bad_seq == 7


def test_forged_entry_with_bad_hash_is_caught_at_its_seq(log, db):
    prev = log.entries(after_seq=4, limit=1)[0]
    sql, params = _forge(log, 6, prev.hash)
    params = params[:-1] + ("0" * 64,)
    shift = [(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(10, 5, -1)]
    tamper(db, *shift, (sql, params))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 6


def test_reopening_restores_the_triggers(log, db):
    tamper(db)
    SqliteStore(db).close()
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_concurrent_appends_keep_one_chain(log):
    def burst():
        for _ in range(25):
            log.append("view.denied", actor=OFFICER, object="camera:x", outcome="denied")

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = log.verify()
    assert result.ok and result.checked == 110


# --- the bulk verification path (whole pages at once) ------------------------------------


@pytest.mark.parametrize("store_backend", ["sqlite", "postgres"], indirect=True)
def test_page_texts_are_the_canonical_form_on_both_backends(store_backend):
    """The store's aggregated page holds exactly what the row-by-row walk would hash, so
    plain entries never need the row-by-row walk (on SQLite and PostgreSQL)."""
    store = store_backend.open()
    audit = AuditLog(store, FakeClock(), "node-a")
    audit.append_many(
        [
            {
                "event_type": "view.denied",
                "actor": OFFICER if i % 2 else None,
                "actor_id": "system",
                "object": f'camera:"q{i}"\\',
                "outcome": "denied",
                "reason": "tab\there\n",
                "details": {"n": i, "x": [1.5, None, True], "s": "\x01"},
            }
            for i in range(30)
        ]
    )
    n, last, seqs, prevs, hashes, texts, texts_n, odd = store.audit_chain_page(after_seq=0, limit=100)
    entries = audit.entries(limit=100)
    assert (n, last, texts_n, odd) == (30, 30, 30, 0) and seqs == ",".join(str(e.seq) for e in entries)
    assert texts.split("\n") == [e.canonical() for e in entries]
    assert hashes == "".join(e.hash for e in entries) and prevs == "".join(e.prev_hash for e in entries)
    assert [r[3] for r in store.audit_chain_rows(after_seq=10, limit=5)] == [e.canonical() for e in entries[10:15]]
    assert store.audit_chain_page(after_seq=30, limit=100) is None
    walked = []
    audit_module = __import__("emergency.audit.verifier", fromlist=["_Verifier"])
    original = audit_module._Verifier._page_rows
    audit_module._Verifier._page_rows = lambda self, rows, *a: walked.append(rows) or original(self, rows, *a)
    try:
        result = audit.verify()
    finally:
        audit_module._Verifier._page_rows = original
    assert result.ok and result.checked == 30 and walked == []


def test_many_pages_verify_and_a_late_edit_is_named(log, db, monkeypatch):
    """Across page boundaries (pages of 3 here): a clean log verifies in bulk; an edit on a
    later page is named with the same seq and count as the row-by-row walk gives."""
    monkeypatch.setattr("emergency.audit.verifier._PAGE", 3)
    for i in range(20):
        log.append("view.started", actor=OFFICER, object=f"camera:c{i}", details={"i": i})
    result = log.verify()
    assert result.ok and result.checked == 30
    tamper(db, ("UPDATE audit_log SET object = 'camera:zz' WHERE seq = 23", ()))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 23 and result.checked == 23


def test_hash_stored_as_a_blob_is_caught(log, db):
    """Same bytes, different type: the bulk path must not read past it."""
    entry = log.entries(after_seq=4, limit=1)[0]
    tamper(db, ("UPDATE audit_log SET hash = ? WHERE seq = 5", (entry.hash.encode(),)))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5


def test_verify_inside_a_store_transaction_sees_its_own_entries(log):
    store = log._store
    with store.transaction():
        log.append("view.denied", actor=OFFICER, object="camera:in-tx", outcome="denied")
        result = log.verify()
    assert result.ok and result.checked == 11


class _PlainStore:
    """A store with only the AuditStore basics (no page or chain-row reads)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        if name in ("audit_chain_page", "audit_chain_rows"):
            raise AttributeError(name)
        return getattr(self._store, name)


def test_a_store_without_bulk_reads_verifies_through_entries(log, db, monkeypatch):
    monkeypatch.setattr("emergency.audit.verifier._PAGE", 4)
    plain = AuditLog(_PlainStore(log._store), FakeClock(), "node-a")
    result = plain.verify()
    assert result.ok and result.checked == 10
    tamper(db, ("UPDATE audit_log SET reason = 'granted' WHERE seq = 6", ()))
    result = plain.verify()
    assert not result.ok and result.first_bad_seq == 6 and result.checked == 6
