"""The checkpoints' own chain (message v3): each links to the one before it, so verify
checks one signature for a run of linked checkpoints; every break of the links is caught
and named, and older (v2) checkpoints still verify as before."""

import base64
from dataclasses import replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emergency.audit import AuditEntry, AuditLog
from emergency.audit.checkpoints import Checkpoint, CheckpointSigner, TrustedKeys, checkpoint_message
from emergency.audit.witness import FileWitness
from emergency.clock import FakeClock
from emergency.sqlite_store import SqliteStore
from tests.sqlite_tamper import tamper

N = 20


class Env:
    def __init__(self, tmp_path, node="node-a", store=None, witness=False, trusted=None):
        self.db = tmp_path / "audit.db"
        self.clock = FakeClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
        self.store = store or SqliteStore(self.db)
        self.signer = CheckpointSigner.load_or_create(tmp_path / f"secrets-{node}", node)
        self.audit = AuditLog(
            self.store,
            self.clock,
            node,
            signer=self.signer,
            trusted=trusted,
            witness=FileWitness(tmp_path / "witness.jsonl") if witness else None,
        )

    def append(self, n=1, batch=1):
        for i in range(n):
            self.audit.append_many([{"event_type": "view.denied", "object": f"camera:c{i}-{k}"} for k in range(batch)])
            self.clock.advance(0.5)

    def sql(self, *statements):
        tamper(self.db, *statements)

    def checkpoints(self):
        return self.store.audit_checkpoints(limit=10_000)

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        self.sql(
            (
                "INSERT INTO audit_checkpoints (seq, hash, count, ts, node, key_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cp.seq, cp.hash, cp.count, cp.ts, cp.node, cp.key_id, f"{cp.prev}:{cp.signature}"),
            )
        )


def _forged_rows(env, after: AuditEntry, n: int) -> list[AuditEntry]:
    out, prev = [], after.hash
    for i in range(n):
        e = replace(after, seq=after.seq + 1 + i, prev_hash=prev, object=f"camera:forged{i}", hash="")
        e = replace(e, hash=e.computed_hash())
        out.append(e)
        prev = e.hash
    return out


def _insert_rows(env, rows):
    with env.store.transaction():
        env.store.insert_audit_entries(rows)


def test_one_signature_vouches_for_a_linked_log(tmp_path):
    env = Env(tmp_path)
    env.append(N)
    cps = env.checkpoints()
    assert len(cps) == N and cps[0].prev == ""
    assert all(b.prev == a.link() for a, b in zip(cps, cps[1:], strict=False))
    result = env.audit.verify()
    assert result.ok, result
    assert result.signatures == 1 and result.checkpoints == N


def test_forged_checkpoint_between_two_genuine_ones_is_named(tmp_path):
    env = Env(tmp_path)
    env.append(5, batch=4)  # checkpoints at 4, 8, ..., 20
    genuine = {cp.seq: cp for cp in env.checkpoints()}
    bad_sig = base64.b64encode(bytes(64)).decode()
    env.insert_checkpoint(replace(genuine[8], seq=10, count=2, prev=genuine[8].link(), signature=bad_sig))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 10 and "bad signature" in result.problem
    # signed by a key of the attacker's own, it is not trusted
    env.sql(("DELETE FROM audit_checkpoints WHERE seq = 10", ()))
    forger = CheckpointSigner(Ed25519PrivateKey.generate(), "node-a")
    env.insert_checkpoint(forger.sign(10, genuine[8].hash, 2, genuine[8].ts, genuine[8].link()))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 10 and "not trusted" in result.problem


def test_a_checkpoint_widened_to_cover_forged_rows_is_named(tmp_path):
    env = Env(tmp_path)
    env.append(N)
    head = env.audit.entries(after_seq=N - 1)[0]
    _insert_rows(env, _forged_rows(env, head, 3))  # seq 21-23, chained on correctly
    env.append(3)  # genuine batches on top: 24, 25, 26
    cp24 = next(cp for cp in env.checkpoints() if cp.seq == 24)
    assert cp24.count == 1
    env.sql(("UPDATE audit_checkpoints SET count = 4 WHERE seq = 24", ()))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 24 and "bad signature" in result.problem


def test_a_checkpoint_deleted_from_the_middle_breaks_the_next_link(tmp_path):
    env = Env(tmp_path)
    env.append(5, batch=4)
    env.sql(("DELETE FROM audit_checkpoints WHERE seq = 8", ()))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 5
    assert "seq 5–8 are not covered" in result.problem and "checkpoint at seq 12" in result.problem
    assert "no longer in the database" in result.problem


def test_the_writer_does_not_vouch_for_a_checkpoint_it_cannot_check(tmp_path):
    """A forged row and checkpoint at the head, then a genuine batch on top: the writer
    finds the forged checkpoint's signature bad and does not link to it, so verify
    checks that signature itself."""
    env = Env(tmp_path)
    env.append(N)
    head = env.audit.entries(after_seq=N - 1)[0]
    (row,) = _forged_rows(env, head, 1)
    _insert_rows(env, [row])
    forger = CheckpointSigner(Ed25519PrivateKey.generate(), "node-a")
    last = env.checkpoints()[-1]
    forged = forger.sign(N + 1, row.hash, 1, last.ts, last.link())
    env.insert_checkpoint(replace(forged, key_id=env.signer.key_id))  # claims the node's key
    env.append(2)
    cps = env.checkpoints()
    assert cps[-2].prev == "" and cps[-1].prev == cps[-2].link()
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == N + 1 and "bad signature" in result.problem


def test_v2_checkpoints_verify_and_the_first_v3_links_to_the_last(tmp_path):
    store = SqliteStore(tmp_path / "audit.db")
    plain = AuditLog(store, FakeClock(datetime(2025, 3, 1, tzinfo=UTC)), "node-a")
    env = Env(tmp_path, store=store)
    private = env.signer._private
    for i in range(5):
        (e,) = plain.append_many([{"event_type": "view.denied", "object": f"camera:old{i}"}])
        sig = private.sign(checkpoint_message(e.seq, e.hash, 1, e.ts, "node-a", env.signer.key_id))
        store.insert_audit_checkpoint(
            Checkpoint(e.seq, e.hash, 1, e.ts, "node-a", env.signer.key_id, base64.b64encode(sig).decode())
        )
    env.append(5)
    cps = env.checkpoints()
    assert [cp.prev is None for cp in cps] == [True] * 5 + [False] * 5
    assert cps[5].prev == cps[4].link()
    result = env.audit.verify()
    assert result.ok, result
    assert result.signatures == 5  # v2 seq 1-4 each, and the newest; the links vouch for v2 seq 5 and v3
    env.sql(("UPDATE audit_checkpoints SET ts = '2025-03-01T12:00:00.000Z' WHERE seq = 3", ()))
    result = env.audit.verify()
    assert not result.ok and result.first_bad_seq == 3 and "bad signature" in result.problem


def test_two_nodes_link_each_others_checkpoints(tmp_path):
    a = Env(tmp_path, "node-a")
    b = Env(tmp_path, "node-b", store=SqliteStore(tmp_path / "audit.db"))
    both = TrustedKeys([(a.signer.public_raw, "node-a"), (b.signer.public_raw, "node-b")])
    a.audit._trusted = b.audit._trusted = both
    for _ in range(5):
        a.append()
        b.append()
    cps = a.checkpoints()
    assert [cp.node for cp in cps] == ["node-a", "node-b"] * 5
    assert all(y.prev == x.link() for x, y in zip(cps, cps[1:], strict=False))
    result = a.audit.verify()
    assert result.ok and result.signatures == 1, result
    # a verifier that does not trust node-b's key says so
    alone = TrustedKeys([(a.signer.public_raw, "node-a")])
    a.audit._trusted = alone
    result = a.audit.verify()
    assert not result.ok and result.first_bad_seq == 2 and "not trusted" in result.problem
    b.store.close()


def test_messages_and_lines_are_the_json_they_always_were():
    """Messages and witness/mirror lines are formatted directly (verify builds one per
    checkpoint); the bytes must stay what ``json.dumps`` made, or v1/v2 signatures and
    older witness lines would no longer match."""
    import json
    from dataclasses import asdict

    from emergency.audit.checkpoints import checkpoint_message_v3, record_line

    for node in ("node-a", 'nöde "x"\n\t\u2028', ""):
        fields = {"count": 3, "hash": "ab" * 32, "key_id": "k" * 16, "node": node, "seq": 10**12, "ts": "2025-03-01"}
        dumped = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        assert checkpoint_message(10**12, "ab" * 32, 3, "2025-03-01", node, "k" * 16) == (
            b"sightline-audit-checkpoint/v2\n" + dumped
        )
        v3 = json.dumps({**fields, "prev": "p" * 64}, sort_keys=True, separators=(",", ":")).encode()
        assert checkpoint_message_v3(10**12, "ab" * 32, 3, "2025-03-01", node, "k" * 16, "p" * 64) == (
            b"sightline-audit-checkpoint/v3\n" + v3
        )
        v2 = Checkpoint(10**12, "ab" * 32, 3, "2025-03-01", node, "k" * 16, "c2ln")
        old = {k: v for k, v in asdict(v2).items() if k != "prev"}
        assert record_line(v2) == json.dumps(old, sort_keys=True, separators=(",", ":"))
        cp = replace(v2, prev="p" * 64)
        assert record_line(cp) == json.dumps(asdict(cp), sort_keys=True, separators=(",", ":"))
