"""Signed checkpoints, the mirror and group commit: tampering in the database (triggers
dropped) and in the mirror file is caught and named; cadence; transactions."""

import base64
import json
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emergency.audit import AuditEntry, AuditLog
from emergency.audit.checkpoints import CheckpointSigner, TrustedKeys
from emergency.audit.events import AuditEvent
from emergency.audit.mirror import FileMirror, SyslogMirror, open_mirror
from emergency.audit.witness import FileWitness
from emergency.clock import FakeClock
from emergency.model import Actor
from emergency.site import Role
from emergency.sqlite_store import SqliteStore
from tests.sqlite_tamper import tamper

OFFICER = Actor("officer", Role.OFFICER, "village-pd", (), mfa=True)
N = 20


class Env:
    def __init__(self, tmp_path, every=5, mirror=True, witness=True):
        self.db = tmp_path / "audit.db"
        self.mirror_path = tmp_path / "audit.jsonl"
        self.clock = FakeClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
        self.store = SqliteStore(self.db)
        self.signer = CheckpointSigner.load_or_create(tmp_path / "secrets", "node-a")
        self.audit = AuditLog(
            self.store,
            self.clock,
            "node-a",
            signer=self.signer,
            mirror=FileMirror(self.mirror_path) if mirror else None,
            witness=FileWitness(tmp_path / "witness.jsonl") if witness else None,
            checkpoint_every=every,
        )

    def fill(self, n=N):
        for i in range(1, n + 1):
            self.audit.append(
                "view.denied",
                actor=OFFICER,
                object=f"camera:c{i}",
                outcome="denied",
                source="10.0.0.1",
                reason="no_live_grant",
                details={"n": i},
            )
            self.clock.advance(0.5)

    def sql(self, *statements):
        tamper(self.db, *statements)

    def lines(self):
        return self.mirror_path.read_text().splitlines()

    def write_lines(self, lines):
        self.mirror_path.write_text("".join(line + "\n" for line in lines))

    def entry_line_index(self, seq):
        return next(
            i for i, line in enumerate(self.lines()) if line.startswith('{"hash"') and json.loads(line)["seq"] == seq
        )

    def verify(self):
        # the mirror grace is about entries still on their way; these are all "old"
        self.clock.advance(60)
        return self.audit.verify()


@pytest.fixture(autouse=True, params=[20_000, 3, 7], ids=["one-page", "pages-of-3", "pages-of-7"])
def page_size(request, monkeypatch):
    """Every case also with small verification pages: the bulk check of a page must reach
    the same verdict, seq and count as the row-by-row walk, across page boundaries."""
    monkeypatch.setattr("emergency.audit.verifier._PAGE", request.param)
    return request.param


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    e.fill()
    yield e
    e.store.close()


def _row(entry: AuditEntry) -> tuple[str, tuple]:
    row = {**entry.__dict__, "details": json.dumps(entry.details)}
    return f"INSERT INTO audit_log ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())


def _forged(env, seq, prev_hash) -> AuditEntry:
    template = env.audit.entries(limit=1)[0]
    forged = replace(template, seq=seq, prev_hash=prev_hash, event_type="view.started", outcome="success", hash="")
    return replace(forged, hash=forged.computed_hash())


def test_untouched_log_verifies_with_checkpoints_and_mirror(env):
    result = env.verify()
    assert result.ok, result
    assert result.checked == N and result.checkpoints == N  # one per commit batch
    assert result.last_checkpoint_seq == N and result.unsigned_tail == 0
    assert "matches the database (20 entries, 20 checkpoints)" in result.mirror
    assert result.signers == (f"{env.signer.key_id} (node-a, trusted): 20 checkpoints",)
    assert "holds all 20 witnessed checkpoints" in result.witness


# --- the database, triggers dropped ------------------------------------------------------


def test_db_altered_entry_is_named(env):
    env.sql(("UPDATE audit_log SET reason = 'granted' WHERE seq = 7", ()))
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 7 and "hash" in result.problem


def test_db_deleted_entry_is_named(env):
    env.sql(("DELETE FROM audit_log WHERE seq = 9", ()))
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 9 and "missing" in result.problem


def test_db_reordered_entries_are_named(env):
    env.sql(
        ("UPDATE audit_log SET seq = -1 WHERE seq = 3", ()),
        ("UPDATE audit_log SET seq = 3 WHERE seq = 8", ()),
        ("UPDATE audit_log SET seq = 8 WHERE seq = -1", ()),
    )
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_db_inserted_entry_is_named(env):
    prev = env.audit.entries(after_seq=4, limit=1)[0]
    shift = [(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(N, 5, -1)]
    env.sql(*shift, _row(_forged(env, 6, prev.hash)))
    result = env.verify()
    # the forger chained seq 6 correctly, so the chain breaks at 7; the mirror names 6 itself
    assert (
        not result.ok and result.first_bad_seq == 6 and "differs between the database and the mirror" in result.problem
    )


def test_db_inserted_entry_without_mirror_is_caught_by_the_checkpoint(tmp_path):
    e = Env(tmp_path, mirror=False)
    e.fill()
    prev = e.audit.entries(after_seq=4, limit=1)[0]
    shift = [(f"UPDATE audit_log SET seq = {s + 1} WHERE seq = {s}", ()) for s in range(N, 5, -1)]
    e.sql(*shift, _row(_forged(e, 6, prev.hash)))
    result = e.verify()
    # the chain breaks at 7, but the checkpoint at 6 signed the real seq 6
    assert not result.ok and result.first_bad_seq == 6 and "checkpoint" in result.problem


def test_chain_recomputed_up_to_a_checkpoint_is_caught(tmp_path):
    """Rewrite seq 8 and recompute every later hash: the chain is consistent again, but the
    checkpoint of seq 8's batch signed the old hash; the mirror names seq 8 too."""
    for with_mirror, named in ((False, 8), (True, 8)):
        (tmp_path / str(with_mirror)).mkdir()
        e = Env(tmp_path / str(with_mirror), mirror=with_mirror)
        e.fill()
        entries = e.audit.entries(limit=100)
        rewritten, prev = [], entries[6].hash
        for old in entries[7:]:
            new = replace(old, prev_hash=prev, reason="granted" if old.seq == 8 else old.reason, hash="")
            new = replace(new, hash=new.computed_hash())
            rewritten.append(new)
            prev = new.hash
        e.sql(("DELETE FROM audit_log WHERE seq >= 8", ()), *(_row(x) for x in rewritten))
        result = e.verify()
        assert not result.ok and result.first_bad_seq == named, result
        if not with_mirror:
            assert "checkpoint" in result.problem
        e.store.close()


def test_truncated_tail_before_a_checkpoint_is_caught(tmp_path):
    e = Env(tmp_path, mirror=False)
    e.fill()
    e.sql(("DELETE FROM audit_log WHERE seq > 13", ()))
    result = e.verify()
    assert not result.ok and result.first_bad_seq == 14 and "checkpoint at seq 14" in result.problem


def test_truncated_tail_after_the_last_checkpoint_is_caught_by_the_mirror(env):
    env.sql(("DELETE FROM audit_log WHERE seq > 17", ()))
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 18 and "were removed" in result.problem


def test_checkpoint_with_a_bad_signature_is_caught(env):
    cp = env.store.audit_checkpoints(after_seq=10, limit=1)[0]
    sig = bytearray(base64.b64decode(cp.signature))
    sig[0] ^= 1
    env.sql(("UPDATE audit_checkpoints SET signature = ? WHERE seq = ?", (base64.b64encode(sig).decode(), cp.seq)))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == cp.seq and "bad signature" in result.problem


def test_checkpoint_moved_to_another_seq_is_caught(env):
    env.sql(("UPDATE audit_checkpoints SET ts = '2025-03-01T12:00:00.000Z' WHERE seq = 6", ()))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 6 and "bad signature" in result.problem


def test_forged_key_is_not_trusted(env, tmp_path):
    """Whoever can write the database can record a key and sign with it; verify trusts
    only this node's key and pinned ones."""
    forger = CheckpointSigner(Ed25519PrivateKey.generate(), "node-a")
    env.store.insert_audit_key(forger.audit_key("2025-03-01T12:00:00.000Z"))
    head = env.audit.entries(after_seq=N - 1, limit=1)[0]
    forged = _forged(env, N + 1, head.hash)
    env.sql(_row(forged))
    env.store.insert_audit_checkpoint(forger.sign(N + 1, forged.hash, 1, "2025-03-01T12:00:30.000Z"))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == N + 1 and "not trusted" in result.problem
    assert any("NOT trusted" in s for s in result.signers)
    # pinned in secrets/audit_trusted_keys, it is trusted
    (tmp_path / "secrets" / "audit_trusted_keys").write_text(
        f"{forger.key_id} {base64.b64encode(forger.public_raw).decode()} node-b\n"
    )
    trusted = TrustedKeys.for_node(tmp_path / "secrets")
    assert env.signer.key_id in trusted and forger.key_id in trusted
    env.audit._trusted = trusted
    result = env.verify()  # trusted now, but that entry never reached the mirror
    assert not result.ok and result.first_bad_seq == N + 1 and "not in the mirror" in result.problem


def test_deleted_checkpoint_is_caught_by_the_witness(env):
    env.sql(("DELETE FROM audit_checkpoints WHERE seq = 11", ()))
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 11 and "the witness saw" in result.problem
    assert "was deleted from the database" in result.problem


def test_deleted_checkpoint_leaves_its_batch_unsigned(tmp_path):
    e = Env(tmp_path, mirror=False, witness=False)
    e.fill()
    e.sql(("DELETE FROM audit_checkpoints WHERE seq IN (11, 12)", ()))
    result = e.verify()
    assert not result.ok and result.first_bad_seq == 11 and "seq 11–12 are not covered" in result.problem


# --- the mirror file ---------------------------------------------------------------------


def test_mirror_altered_line_is_named(env):
    lines = env.lines()
    i = env.entry_line_index(7)
    lines[i] = lines[i].replace('"reason":"no_live_grant"', '"reason":"granted"')
    env.write_lines(lines)
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 7 and "reason" in result.problem


def test_mirror_deleted_line_is_named(env):
    lines = env.lines()
    del lines[env.entry_line_index(9)]
    env.write_lines(lines)
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 9 and "seq 9 is in the database but not in" in result.problem


def test_mirror_lines_out_of_order_lose_nothing(env):
    """Processes sharing a mirror append their batches as they commit, so lines may be out
    of seq order; every entry is still there, exactly."""
    lines = env.lines()
    a, b = env.entry_line_index(3), env.entry_line_index(8)
    lines[a], lines[b] = lines[b], lines[a]
    env.write_lines(lines)
    assert env.verify().ok


def test_mirror_inserted_line_is_named(env):
    lines = env.lines()
    prev = env.audit.entries(after_seq=4, limit=1)[0]
    lines.insert(env.entry_line_index(6), _forged(env, 6, prev.hash).mirror_line())
    env.write_lines(lines)
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 6 and "differs" in result.problem


def test_mirror_duplicated_line_is_named(env):
    lines = env.lines()
    lines.insert(env.entry_line_index(6), lines[env.entry_line_index(5)])
    env.write_lines(lines)
    result = env.verify()
    assert not result.ok and result.first_bad_seq == 6 and "inserted or reordered" in result.problem


def test_mirror_missing_tail_fails_at_once_and_on_every_run_until_acknowledged(env):
    lines = env.lines()
    env.write_lines(lines[: env.entry_line_index(19)])
    for _ in range(2):
        result = env.audit.verify()  # no grace: the clock has not moved
        assert not result.ok and result.first_bad_seq == 19, result
        assert "seq 19–20 are in the database but not in the mirror" in result.problem
        env.audit.append(AuditEvent.AUDIT_VERIFIED, actor_id="cli:x")  # a run's own entry copies nothing
    env.audit.append(AuditEvent.AUDIT_MIRROR_ACKNOWLEDGED, actor_id="cli:x", details={"through": 20, "why": "t"})
    result = env.audit.verify()
    assert result.ok and "acknowledged through seq 20" in " ".join(result.notes)


def test_mirror_catches_up_across_processes_without_duplicates(env, tmp_path):
    other = AuditLog(SqliteStore(env.db), env.clock, "cli", signer=env.signer, mirror=FileMirror(env.mirror_path))
    other.append("auth.token_issued", actor_id="cli:root", object="account:admin")
    env.fill(3)
    assert env.verify().ok
    seqs = [json.loads(x)["seq"] for x in env.lines() if x.startswith('{"hash"')]
    assert seqs == list(range(1, N + 5))


def test_mirror_added_later_reports_the_older_entries_until_acknowledged(tmp_path):
    """The mirror is never filled from the database: what it never saw is reported."""
    e = Env(tmp_path, mirror=False)
    e.fill()
    late = AuditLog(e.store, e.clock, "node-a", signer=e.signer, mirror=FileMirror(e.mirror_path))
    late.append("gateway.started", actor_id="system")
    result = late.verify()
    assert not result.ok and result.first_bad_seq == 1 and "seq 1–20 are in the database but not" in result.problem
    late.append(AuditEvent.AUDIT_MIRROR_ACKNOWLEDGED, actor_id="cli:x", details={"through": 20, "why": "added"})
    result = late.verify()
    assert result.ok and "20 acknowledged entries" in result.mirror


def test_syslog_mirror_is_reported_not_checkable(tmp_path):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2)
    port = sink.getsockname()[1]
    mirror = open_mirror(f"syslog:127.0.0.1:{port}")
    assert isinstance(mirror, SyslogMirror)
    store = SqliteStore(tmp_path / "a.db")
    audit = AuditLog(store, FakeClock(), "n", mirror=mirror)
    audit.append("gateway.started", actor_id="system", object="node:n")
    message = sink.recv(65536).decode()
    assert "sightline-audit:" in message and '"event_type":"gateway.started"' in message
    result = audit.verify()
    assert result.ok and "not checkable" in result.mirror
    sink.close()


# --- cadence, transactions, group commit -------------------------------------------------


def test_every_commit_batch_is_signed_in_its_transaction(tmp_path):
    e = Env(tmp_path, every=10, mirror=False)
    e.fill(3)
    e.audit.append_many([{"event_type": "bulk", "actor_id": "system"} for _ in range(10)])
    cps = e.store.audit_checkpoints()
    assert [(cp.seq, cp.count) for cp in cps] == [(1, 1), (2, 1), (3, 1), (13, 10)]
    e.audit.tick()
    e.audit.close()
    assert len(e.store.audit_checkpoints()) == 4


def test_forged_rows_appended_with_valid_hashes_are_not_covered(tmp_path):
    e = Env(tmp_path, mirror=False, witness=False)
    e.fill()
    prev = e.audit.entries(after_seq=N - 1, limit=1)[0].hash
    rows = []
    for seq in (N + 1, N + 2):
        forged = _forged(e, seq, prev)
        rows.append(_row(forged))
        prev = forged.hash
    e.sql(*rows)
    e.audit.append("gateway.started", actor_id="system")  # the writer's next batch chains on
    result = e.verify()
    assert not result.ok and result.first_bad_seq == N + 1 and "seq 21–22 are not covered" in result.problem


def test_appends_inside_a_store_transaction_roll_back_with_it(env):
    with pytest.raises(RuntimeError):
        with env.store.transaction():
            joined = env.audit.append("emergency.declared", actor_id="admin", object="emergency:x")
            assert joined.seq == N + 1
            raise RuntimeError("the command failed")
    assert env.store.last_audit_entry().seq == N
    with env.store.transaction():
        env.audit.append("emergency.declared", actor_id="admin", object="emergency:y")
    assert env.store.last_audit_entry().seq == N + 1
    env.audit.tick()  # the mirror picks up entries that joined a transaction
    assert env.verify().ok


def test_concurrent_appends_share_commits(tmp_path):
    e = Env(tmp_path, every=100)
    results: list[AuditEntry] = []

    def burst():
        for _ in range(50):
            results.append(e.audit.append("view.denied", actor=OFFICER, object="camera:x", outcome="denied"))

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.seq for r in results) == list(range(1, 401))
    assert e.audit.batches < 400  # some callers shared a commit
    result = e.verify()
    assert result.ok and result.checked == 400, result


def test_append_many_is_one_transaction(tmp_path):
    e = Env(tmp_path, every=1000)
    entries = e.audit.append_many(
        [{"event_type": "bulk", "actor_id": "system", "details": {"i": i}} for i in range(500)]
    )
    assert [x.seq for x in entries] == list(range(1, 501)) and e.verify().ok


def test_non_ascii_entries_verify_through_the_slow_path(tmp_path):
    e = Env(tmp_path)
    e.audit.append("note", actor_id="système", reason="élève", details={"ü": "ß"})
    assert e.verify().ok


def test_a_rolled_back_savepoint_mirrors_and_witnesses_nothing(env):
    with env.store.transaction():
        with pytest.raises(RuntimeError):
            with env.store.transaction():
                env.audit.append("emergency.declared", actor_id="admin", object="emergency:x")
                raise RuntimeError("the inner step failed")
        env.audit.append("emergency.declared", actor_id="admin", object="emergency:y")
    assert [cp.seq for cp in env.store.audit_checkpoints(after_seq=N)] == [N + 1]
    assert json.loads(env.lines()[-2])["object"] == "emergency:y"
    assert env.verify().ok


# --- the witness ---------------------------------------------------------------------------


def test_database_rolled_back_to_an_older_copy_is_caught_by_the_witness(tmp_path):
    """Restoring an older copy leaves a database that verifies on its own: chain and
    checkpoints agree. The witness saw further."""
    e = Env(tmp_path, mirror=False)
    e.fill(10)
    e.store.close()
    old = e.db.read_bytes()
    e.store = SqliteStore(e.db)
    e.audit._store = e.store
    e.fill(5)
    e.store.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"audit.db{suffix}").unlink(missing_ok=True)
    e.db.write_bytes(old)
    e.store = SqliteStore(e.db)
    e.audit._store = e.store
    result = e.verify()
    assert not result.ok and result.first_bad_seq == 11
    assert result.problem.startswith("seq 11–15 are missing: the witness saw seq 15 at ")


def test_torn_witness_line_is_a_note_and_the_next_write_starts_a_new_line(tmp_path):
    e = Env(tmp_path, mirror=False)
    e.fill(2)
    with open(tmp_path / "witness.jsonl", "a") as fh:
        fh.write('{"count":1,"ha')
    e.audit._witness = FileWitness(tmp_path / "witness.jsonl")
    e.fill(1)
    result = e.verify()
    assert result.ok and any("witness lines 3" in n for n in result.notes), result
    assert "holds all 3 witnessed checkpoints" in result.witness


# --- the signing key -----------------------------------------------------------------------


def test_a_loose_signing_key_is_tightened_to_owner_only(tmp_path, caplog):
    secrets = tmp_path / "secrets"
    CheckpointSigner.load_or_create(secrets, "n")
    key = secrets / "audit-signing.key"
    key.chmod(0o644)
    secrets.chmod(0o755)
    CheckpointSigner.load_or_create(secrets, "n")
    assert key.stat().st_mode & 0o777 == 0o600 and secrets.stat().st_mode & 0o777 == 0o700
    assert "rotate the key" in caplog.text


def test_a_loose_signing_key_of_another_user_is_refused(tmp_path, monkeypatch):
    from emergency.audit.checkpoints import KeyPermissionError

    secrets = tmp_path / "secrets"
    CheckpointSigner.load_or_create(secrets, "n")
    (secrets / "audit-signing.key").chmod(0o640)
    monkeypatch.setattr("emergency.audit.checkpoints.os.geteuid", lambda: 4242)
    with pytest.raises(KeyPermissionError, match="owner-only"):
        CheckpointSigner.load_or_create(secrets, "n")


# --- the limits docs/audit.md states ------------------------------------------------------


def test_with_the_node_key_a_rewritten_history_verifies_unless_the_mirror_saw_it(tmp_path):
    """Out of reach: someone holding the signing key and the database can re-sign a
    rewritten history; only a copy they cannot write (here the mirror) still shows it."""
    e = Env(tmp_path, mirror=True, witness=False)
    e.fill()
    entries = e.audit.entries(limit=100)
    prev, rewritten = entries[6].hash, []
    for old in entries[7:]:
        new = replace(old, prev_hash=prev, reason="granted" if old.seq == 8 else old.reason, hash="")
        new = replace(new, hash=new.computed_hash())
        rewritten.append(new)
        prev = new.hash
    resigned = [e.signer.sign(x.seq, x.hash, 1, x.ts) for x in rewritten]
    e.sql(
        ("DELETE FROM audit_log WHERE seq >= 8", ()),
        ("DELETE FROM audit_checkpoints WHERE seq >= 8", ()),
        *(_row(x) for x in rewritten),
    )
    for cp in resigned:
        e.store.insert_audit_checkpoint(cp)
    e.audit._mirror = None
    assert e.verify().ok
    e.audit._mirror = FileMirror(e.mirror_path)
    result = e.verify()
    assert not result.ok and result.first_bad_seq == 8 and "differs" in result.problem


def test_a_lost_mirror_write_is_reported_and_the_witness_raises_no_false_alarm(env, monkeypatch):
    """A crash between the commit and the mirror write: the batch is committed and signed,
    the mirror lacks it (reported until acknowledged); the witness is behind, not wrong."""
    monkeypatch.setattr(env.audit.mirror, "write", lambda entries, cp: (_ for _ in ()).throw(OSError("disk")))
    monkeypatch.setattr(env.audit.witness, "write", lambda cp: (_ for _ in ()).throw(OSError("disk")))
    env.audit.append("gateway.started", actor_id="system")
    monkeypatch.undo()
    result = env.verify()
    assert not result.ok and result.first_bad_seq == N + 1, result
    assert f"seq {N + 1} is in the database but not in the mirror" in result.problem
    assert f"newest at seq {N}" in result.witness
