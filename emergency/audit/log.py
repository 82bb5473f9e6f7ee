"""Writing the append-only, hash-chained audit log.

Appends outside a store transaction go through a group commit: concurrent callers
share one durable commit (one fsync) and each gets its own entry back once it is
committed. An append inside ``store.transaction()`` joins that transaction and rolls
back with it. After each commit the entries go to the mirror (if any) and a signed
checkpoint is made when one is due.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime
from typing import Any

from emergency.audit.checkpoints import Checkpoint, CheckpointSigner, TrustedKeys
from emergency.audit.entry import CANONICAL_ENCODER, GENESIS_HASH, OUTCOMES, AuditEntry, canonical_details, iso_ms
from emergency.audit.events import AuditEvent
from emergency.audit.mirror import Mirror
from emergency.audit.verifier import VerifyResult, verify
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
    """Appends to, checkpoints, mirrors and verifies the audit log of one node.

    ``signer`` (this node's Ed25519 key) turns on checkpoints: one every
    ``checkpoint_every`` entries and, when there are unsigned entries, at least every
    ``checkpoint_interval`` seconds (``tick()``/``checkpoint_if_due()``, which the
    gateway's ticker calls) and at ``close()``. ``trusted`` are the keys verify accepts
    (default: the signer's own). ``mirror`` is an optional second sink.
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
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._qlock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        self._cp_lock = threading.Lock()
        self._last_cp: Checkpoint | None = None
        self._cp_loaded = False
        self.batches = 0  # group commits so far (the bench reports entries per commit)
        if signer is not None:
            store.insert_audit_key(signer.audit_key(iso_ms(clock.now())))
        if mirror is not None:
            last = store.last_audit_entry()
            mirror.attach(last.seq if last else 0)

    @property
    def mirror(self) -> Mirror | None:
        return self._mirror

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
        joined = self._in_transaction()
        with self._store.transaction():
            entries = self._write(prepared)
        if not joined:
            self._after_commit(entries)
        return entries

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
        if error is None:
            try:
                self._after_commit(entries)
            except Exception:  # committed all the same: the callers get their entries
                log.exception("audit: signing a checkpoint after a commit failed")
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
        return entries

    def _after_commit(self, entries: list[AuditEntry]) -> None:
        """Mirror the committed entries, then sign a checkpoint if one is due. A failing
        sink does not undo the commit: it is logged and verify shows the mirror's lag."""
        if self._mirror is not None:
            try:
                self._mirror.sync(entries, self._read)
            except Exception:
                log.exception("audit mirror %s: write failed; it will catch up on the next tick", self._mirror.spec)
        if entries:
            self.checkpoint_if_due(head=entries[-1])

    def _read(self, after_seq: int, limit: int) -> list[AuditEntry]:
        return self._store.audit_entries(after_seq=after_seq, limit=limit)

    # checkpoints and the mirror over time

    def tick(self) -> None:
        """For the gateway's ticker: mirror entries that joined other transactions, and
        sign a checkpoint if one is due."""
        if self._in_transaction():
            return
        head = self._store.last_audit_entry()
        if head is None:
            return
        if self._mirror is not None and self._mirror.synced_seq < head.seq:
            try:
                self._mirror.sync([], self._read)
            except Exception:
                log.exception("audit mirror %s: write failed", self._mirror.spec)
        self.checkpoint_if_due(head=head)

    def close(self) -> None:
        """At gateway stop: mirror everything and sign the tail."""
        if not self._in_transaction():
            head = self._store.last_audit_entry()
            if self._mirror is not None and head is not None:
                self._mirror.sync([], self._read)
            self.checkpoint_if_due(head=head, force=True)
        if self._mirror is not None:
            self._mirror.close()

    def last_checkpoint(self) -> Checkpoint | None:
        if not self._cp_loaded:
            self._last_cp = self._store.last_audit_checkpoint()
            self._cp_loaded = True
        return self._last_cp

    def checkpoint_if_due(self, *, head: AuditEntry | None = None, force: bool = False) -> Checkpoint | None:
        """Sign the head of the chain when ``checkpoint_every`` entries or
        ``checkpoint_interval`` seconds have passed since the last checkpoint (or there is
        none yet), or when ``force`` and anything is unsigned. Needs a signer."""
        if self._signer is None:
            return None
        with self._cp_lock:
            last = self.last_checkpoint()
            if head is None:
                head = self._store.last_audit_entry()
            if head is None or (last is not None and head.seq <= last.seq):
                return None
            now = self._clock.now()
            due = (
                force
                or last is None
                or head.seq - last.seq >= self.checkpoint_every
                or (now - datetime.fromisoformat(last.ts)).total_seconds() >= self.checkpoint_interval
            )
            if not due:
                return None
            cp = self._signer.sign(head.seq, head.hash, head.seq, iso_ms(now))
            if not self._store.insert_audit_checkpoint(cp):  # another process signed this seq
                self._last_cp = self._store.last_audit_checkpoint()
                return None
            self._last_cp = cp
        if self._mirror is not None:
            try:
                self._mirror.sync([head], self._read)
                self._mirror.write_checkpoint(cp)
            except Exception:
                log.exception("audit mirror %s: checkpoint write failed", self._mirror.spec)
        return cp

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
