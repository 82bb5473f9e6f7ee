"""Writing the append-only, hash-chained audit log.

Appends outside a store transaction go through a group commit: concurrent callers
share one durable commit (one fsync) and each gets its own entry back once it is
committed. An append inside ``store.transaction()`` joins that transaction and rolls
back with it. Every batch of entries is signed (a checkpoint over exactly that batch,
inserted in the same transaction), so no committed entry lacks a signature a database
writer cannot make. Each checkpoint links to the one before it (checkpoints.py), so
verify needs only a few signatures. Once the transaction commits, the batch and its checkpoint go to
the mirror and the checkpoint to the witness, from what was written, never read back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from emergency.audit.checkpoints import Checkpoint, CheckpointSigner, TrustedKeys
from emergency.audit.entry import CANONICAL_ENCODER, GENESIS_HASH, OUTCOMES, AuditEntry, canonical_details, iso_ms
from emergency.audit.events import AuditEvent
from emergency.audit.mirror import Mirror
from emergency.audit.verifier import VerifyResult, verify
from emergency.audit.witness import FileWitness
from emergency.clock import Clock
from emergency.model import Actor
from emergency.store import AuditLogStore

log = logging.getLogger(__name__)

# (event_type, actor_id, actor_role, actor_agency, object, outcome, source, reason, details)
_Record = tuple[str, str | None, str | None, str | None, str, str, str | None, str | None, dict[str, Any]]


class _Pending:
    """One caller's record in the group-commit queue. ``wake`` is held until the caller
    is woken: with its entry (or error), or to lead the next group."""

    __slots__ = ("record", "entry", "error", "wake")

    def __init__(self, record: _Record) -> None:
        self.record = record
        self.entry: AuditEntry | None = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class AuditLog:
    """Appends to, signs, mirrors, witnesses and verifies the audit log of one node.

    ``signer`` (this node's Ed25519 key) signs a checkpoint for every commit batch, in
    its transaction. ``trusted`` are the keys verify accepts (default: the signer's
    own). ``mirror`` is an optional second sink; ``witness`` keeps every checkpoint
    outside the database. ``checkpoint_every`` and ``checkpoint_interval`` are kept for
    old callers and site files: every batch is signed now, so they change nothing.
    """

    def __init__(
        self,
        store: AuditLogStore,
        clock: Clock,
        node: str,
        *,
        signer: CheckpointSigner | None = None,
        trusted: TrustedKeys | None = None,
        mirror: Mirror | None = None,
        witness: FileWitness | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 60.0,
    ) -> None:
        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise ValueError("checkpoint_every must be >= 1 and checkpoint_interval > 0")
        self._store = store
        self._clock = clock
        self._node = node
        self._signer = signer
        self._trusted = (
            trusted if trusted is not None else TrustedKeys([(signer.public_raw, signer.node)] if signer else [])
        )
        self._mirror = mirror
        self._witness = witness
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._qlock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        self.batches = 0  # group commits so far (the bench reports entries per commit)
        self._vouched = ""  # link() of the last checkpoint this node signed or checked
        if signer is not None:
            store.insert_audit_key(signer.audit_key(iso_ms(clock.now())))
        if mirror is not None:
            last = store.last_audit_entry()
            mirror.attach(last.seq if last else 0)

    @property
    def mirror(self) -> Mirror | None:
        return self._mirror

    @property
    def witness(self) -> FileWitness | None:
        return self._witness

    @property
    def trusted(self) -> TrustedKeys:
        return self._trusted

    # appending

    def append(
        self,
        event_type: AuditEvent,
        *,
        actor: Actor | None = None,
        actor_id: str | None = None,
        object: str = "",
        outcome: str = "success",
        source: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Writes one entry and returns it once committed (or, inside a store
        transaction, once part of that transaction, which it commits or rolls back with)."""
        record = _record(event_type, actor, actor_id, object, outcome, source, reason, details)
        if self._in_transaction():
            with self._store.transaction():
                return self._write([record])[0]
        return self._group_append(record)

    def append_many(self, records: list[dict[str, Any]]) -> list[AuditEntry]:
        """Bulk: each dict holds ``append``'s arguments (``event_type`` required); one transaction."""
        prepared = [
            _record(
                r["event_type"],
                r.get("actor"),
                r.get("actor_id"),
                r.get("object", ""),
                r.get("outcome", "success"),
                r.get("source"),
                r.get("reason"),
                r.get("details"),
            )
            for r in records
        ]
        if not prepared:
            return []
        with self._store.transaction():
            return self._write(prepared)

    def _in_transaction(self) -> bool:
        probe = getattr(self._store, "audit_in_transaction", None)
        return True if probe is None else probe()

    def _group_append(self, record: _Record) -> AuditEntry:
        """Group commit: a caller that finds no commit under way leads: it takes every
        queued record, writes them in one transaction, hands the lead to the first caller
        that queued meanwhile (whose group is then the next commit) and wakes the callers
        of its own group, each once (no herd woken on a shared condition, where every
        waiter, of this group or the next, woke to re-check)."""
        mine = _Pending(record)
        with self._qlock:
            self._queue.append(mine)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            mine.wake.acquire()  # released with our entry, or to make us the leader
            if mine.error is not None:
                raise mine.error
            if mine.entry is not None:
                return mine.entry
        with self._qlock:
            group, self._queue = self._queue, []
        entries: list[AuditEntry] = []
        error: BaseException | None = None
        try:
            with self._store.transaction():
                entries = self._write([p.record for p in group])
            self.batches += 1
        except BaseException as exc:  # every caller of the group sees the failure
            error = exc
        with self._qlock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leading = False
        if successor is not None:
            successor.wake.release()
        for i, pending in enumerate(group):
            if error is None:
                pending.entry = entries[i]
            else:
                pending.error = error
            if pending is not mine:
                pending.wake.release()
        if mine.error is not None:
            raise mine.error
        assert mine.entry is not None
        return mine.entry

    def _write(self, records: list[_Record]) -> list[AuditEntry]:
        """Inside a transaction: chain ``records`` onto the last entry and insert them."""
        last = self._store.last_audit_entry()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS_HASH)
        ts = iso_ms(self._clock.now())
        entries = []
        sha256, encode = hashlib.sha256, CANONICAL_ENCODER.encode
        for event_type, actor_id, role, agency, obj, outcome, source, reason, details in records:
            seq += 1
            fields: dict[str, Any] = {
                "seq": seq,
                "ts": ts,
                "node": self._node,
                "event_type": event_type,
                "actor_id": actor_id,
                "actor_role": role,
                "actor_agency": agency,
                "object": obj,
                "outcome": outcome,
                "source": source,
                "reason": reason,
                "details": details,
                "prev_hash": prev,
            }
            prev = sha256(encode(fields).encode()).hexdigest()
            entries.append(AuditEntry(**fields, hash=prev))
        many = getattr(self._store, "insert_audit_entries", None)
        if many is not None:
            many(entries)
        else:
            for entry in entries:
                self._store.insert_audit_entry(entry)
        cp = None
        if self._signer is not None:
            cp = self._signer.sign(seq, prev, len(entries), ts, self._link_to(self._store.last_audit_checkpoint()))
            self._vouched = cp.link()
            if not self._store.insert_audit_checkpoint(cp):
                raise RuntimeError(f"audit: a checkpoint at seq {seq} exists already (the log was written around us)")
        after = getattr(self._store, "after_commit", None)
        if after is not None:
            after(lambda: self._publish(entries, cp))
        else:  # a store without commit hooks (tests' in-memory store) commits at once
            self._publish(entries, cp)
        return entries

    def _link_to(self, last: Checkpoint | None) -> str:
        """The ``prev`` of the next checkpoint: the link to ``last`` (the newest in the
        database, whichever node signed it) if this node signed it or finds its signature
        good; otherwise "" (not vouched for: verify then checks its signature itself)."""
        if last is None:
            return ""
        link = last.link()
        if link == self._vouched:
            return link
        problem = self._trusted.check(last)
        if problem:
            log.warning("audit: not linking the next checkpoint to the one before it: %s", problem)
            return ""
        self._vouched = link
        return link

    def _publish(self, entries: list[AuditEntry], cp: Checkpoint | None) -> None:
        """After the commit: the batch to the mirror, its checkpoint to the witness. A
        failing sink does not undo the commit: it is logged, and verify reports what the
        mirror or the witness lacks."""
        if self._mirror is not None:
            try:
                self._mirror.write(entries, cp)
            except Exception:
                log.exception("audit mirror %s: write failed", self._mirror.spec)
        if self._witness is not None and cp is not None:
            try:
                self._witness.write(cp)
            except Exception:
                log.exception("audit witness %s: write failed", self._witness.spec)

    # over time

    def tick(self) -> None:
        """For the gateway's ticker: nothing is left to do (every batch is signed, mirrored
        and witnessed as it commits); kept so the ticker's contract stays."""

    def close(self) -> None:
        """At gateway stop: close the mirror and the witness."""
        if self._mirror is not None:
            self._mirror.close()
        if self._witness is not None:
            self._witness.close()

    def last_checkpoint(self) -> Checkpoint | None:
        return self._store.last_audit_checkpoint()

    # reading and verifying

    def entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        return self._store.audit_entries(after_seq=after_seq, limit=limit)

    def latest(self, event_type: AuditEvent, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        return self._store.audit_entries_of_type(event_type, limit=limit)

    def verify(self, *, mirror_grace_seconds: float = 10.0) -> VerifyResult:
        """Walk the chain from seq 1 and report the first seq where anything is wrong
        (see emergency.audit.verifier); entries newer than ``mirror_grace_seconds`` may
        still be on their way to the mirror."""
        return verify(
            self._store,
            self._clock,
            self._trusted,
            self._mirror,
            witness=self._witness,
            signed=self._signer is not None,
            in_transaction=self._in_transaction(),
            grace=mirror_grace_seconds,
        )


def _record(
    event_type: str,
    actor: Actor | None,
    actor_id: str | None,
    object: str,
    outcome: str,
    source: str | None,
    reason: str | None,
    details: dict[str, Any] | None,
) -> _Record:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    return (
        str(event_type),
        actor.id if actor else actor_id,
        str(actor.role) if actor else None,
        actor.agency if actor else None,
        object,
        outcome,
        source,
        reason,
        canonical_details(details),
    )
