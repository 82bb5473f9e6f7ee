"""The append-only, hash-chained audit log.

Each entry's hash covers every other field, including the previous entry's hash, so
changing, removing, reordering or inserting an entry breaks the chain at that seq.
Ed25519-signed checkpoints (emergency.checkpoints) pin the chain's hash at a seq, so
cutting entries off or recomputing the chain up to a checkpoint is caught too; an
optional mirror (emergency.audit_mirror) keeps a copy outside the database that
verify compares entry by entry.

Hash format (v1, unchanged since the first release): sha256 of the entry's fields
except ``hash`` as JSON with sorted keys, compact separators and ASCII escapes.

Appends outside a store transaction go through a group commit: concurrent callers
share one durable commit (one fsync) and each gets its own entry back once it is
committed. An append inside ``store.transaction()`` joins that transaction and rolls
back with it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import operator
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from emergency.clock import Clock
from emergency.model import Actor
from emergency.store import AuditLogStore

if TYPE_CHECKING:
    from emergency.audit_mirror import Mirror
    from emergency.checkpoints import Checkpoint, CheckpointSigner, TrustedKeys

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
OUTCOMES = frozenset({"success", "denied", "failure"})


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    node: str
    event_type: str
    actor_id: str | None
    actor_role: str | None
    actor_agency: str | None
    object: str
    outcome: str
    source: str | None
    reason: str | None
    details: dict
    prev_hash: str
    hash: str

    def canonical(self) -> str:
        """The text the hash covers: every field but ``hash``, sorted keys, compact, ASCII."""
        fields = asdict(self)
        del fields["hash"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def mirror_line(self) -> str:
        """The entry as one JSON line for the mirror: its hash, then the hashed fields."""
        return _mirror_line(self.hash, self.canonical())


def _mirror_line(hash: str, canonical: str) -> str:
    return '{"hash":"' + hash + '",' + canonical[1:]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoints: int = 0  # checkpoints whose signature and chain hash were checked
    signers: tuple[str, ...] = ()  # "key_id (node): N checkpoints"
    last_checkpoint_seq: int | None = None
    unsigned_tail: int = 0  # entries after the last checkpoint (covered only by the chain and the mirror)
    mirror: str = "none configured"
    notes: tuple[str, ...] = field(default=())


def iso_ms(t: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix (CJIS/NIST AU-8 time stamps)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"audit details cannot hold {type(value).__name__}")


# Prebuilt encoders: json.dumps with keyword arguments builds a new encoder on every call.
_DETAILS_ENCODER = json.JSONEncoder(sort_keys=True, default=_plain)
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # the hash format (v1)


def canonical_details(details: dict | None) -> dict:
    """Details exactly as they will read back from storage, so the hash survives the round trip."""
    return json.loads(_DETAILS_ENCODER.encode(details)) if details else {}


class _Pending:
    """One caller's record in the group-commit queue. ``wake`` is held until the caller
    is woken: with its entry (or error), or to lead the next group."""

    __slots__ = ("record", "entry", "error", "wake")

    def __init__(self, record: tuple) -> None:
        self.record = record
        self.entry: AuditEntry | None = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class AuditLog:
    """Appends, checkpoints, mirrors and verifies the audit log of one node.

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
        from emergency.checkpoints import TrustedKeys

        if checkpoint_every < 1 or checkpoint_interval <= 0:
            raise ValueError("checkpoint_every must be >= 1 and checkpoint_interval > 0")
        self._store = store
        self._clock = clock
        self._node = node
        self._signer = signer
        self._trusted = trusted if trusted is not None else TrustedKeys(
            [(signer.public_raw, signer.node)] if signer else [])
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
        event_type: str,
        *,
        actor: Actor | None = None,
        actor_id: str | None = None,
        object: str = "",
        outcome: str = "success",
        source: str | None = None,
        reason: str | None = None,
        details: dict | None = None,
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
        prepared = [_record(r["event_type"], r.get("actor"), r.get("actor_id"), r.get("object", ""),
                            r.get("outcome", "success"), r.get("source"), r.get("reason"), r.get("details"))
                    for r in records]
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

    def _group_append(self, record: tuple) -> AuditEntry:
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

    def _write(self, records: list[tuple]) -> list[AuditEntry]:
        """Inside a transaction: chain ``records`` onto the last entry and insert them."""
        last = self._store.last_audit_entry()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS_HASH)
        ts = iso_ms(self._clock.now())
        entries = []
        sha256, encode = hashlib.sha256, _CANONICAL_ENCODER.encode
        for event_type, actor_id, role, agency, obj, outcome, source, reason, details in records:
            seq += 1
            fields = {"seq": seq, "ts": ts, "node": self._node, "event_type": event_type, "actor_id": actor_id,
                      "actor_role": role, "actor_agency": agency, "object": obj, "outcome": outcome,
                      "source": source, "reason": reason, "details": details, "prev_hash": prev}
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
            due = (force or last is None or head.seq - last.seq >= self.checkpoint_every
                   or (now - datetime.fromisoformat(last.ts)).total_seconds() >= self.checkpoint_interval)
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

    def latest(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        return self._store.audit_entries_of_type(event_type, limit=limit)

    def verify(self, *, mirror_grace_seconds: float = 10.0) -> VerifyResult:
        """Walk the chain from seq 1 and report the first seq where anything is wrong:
        the chain (seq, prev_hash, hash), a checkpoint (signature by a trusted key, hash
        of the chain at its seq), the mirror (a file mirror must hold the same entries in
        the same order; entries newer than ``mirror_grace_seconds`` may still be on their way)."""
        from emergency.audit_mirror import FileMirror

        return _Verifier(self, FileMirror if isinstance(self._mirror, FileMirror) else None,
                         mirror_grace_seconds).run()


def _record(event_type: str, actor: Actor | None, actor_id: str | None, object: str, outcome: str,
            source: str | None, reason: str | None, details: dict | None) -> tuple:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    return (event_type, actor.id if actor else actor_id, str(actor.role) if actor else None,
            actor.agency if actor else None, object, outcome, source, reason, canonical_details(details))


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq, self.problem = seq, problem


_PAGE = 20_000


_hexdigest = operator.methodcaller("hexdigest")
_tail = operator.itemgetter(slice(1, None))
_CHECKPOINT_PREFIX = '{"checkpoint":'


class _MirrorLines:
    """The mirror file's lines up to the verifier's snapshot, read in blocks: the next
    entry line (``next_entry``, collecting checkpoint lines on the way, as the row-by-row
    walk wants) or the next ``n`` entry lines at once (``take``, for the bulk check)."""

    def __init__(self, blocks: Iterator[tuple[list[str], list[int]]], mirror_cps: list[Checkpoint]) -> None:
        self._blocks = blocks
        self._lines: list[str] = []
        self._cps_at: list[int] = []  # indices in _lines of checkpoint lines, ascending
        self._base = 0  # line number of _lines[0], minus 1
        self._i = 0  # the next line to read
        self._cps = mirror_cps

    def _fill(self, need: int) -> bool:
        """At least ``need`` unread lines buffered; False when the file ends sooner."""
        while len(self._lines) - self._i < need:
            block = next(self._blocks, None)
            if block is None:
                return False
            if self._i:
                del self._lines[:self._i]
                self._cps_at = [c - self._i for c in self._cps_at if c >= self._i]
                self._base += self._i
                self._i = 0
            lines, marks = block
            offset = len(self._lines)
            self._lines.extend(lines)
            self._cps_at.extend(offset + m for m in marks)
        return True

    def mark(self) -> tuple[int, int]:
        return self._base + self._i, len(self._cps)

    def reset(self, mark: tuple[int, int]) -> None:
        self._i = mark[0] - self._base
        del self._cps[mark[1]:]

    def next_entry(self, seq: int) -> tuple[int, str] | None:
        from emergency.checkpoints import Checkpoint

        while self._fill(1):
            n, line = self._base + self._i + 1, self._lines[self._i]
            self._i += 1
            if line.startswith(_CHECKPOINT_PREFIX):
                try:
                    self._cps.append(Checkpoint(**json.loads(line)["checkpoint"]))
                except (ValueError, TypeError, KeyError):
                    raise _Bad(seq, f"mirror line {n} is not a valid checkpoint record") from None
                continue
            return n, line
        return None

    def take(self, n: int) -> list[str] | None:
        """The next ``n`` entry lines, or None (nothing read) when there are fewer or a
        checkpoint line among them is not valid."""
        from emergency.checkpoints import Checkpoint

        start, want = self._i, n
        while True:
            if not self._fill(want):
                return None
            start = self._i  # _fill may have dropped read lines
            lo = bisect.bisect_left(self._cps_at, start)
            hi = bisect.bisect_left(self._cps_at, start + want)
            if want == n + (hi - lo):
                break
            want = n + (hi - lo)
        if hi == lo:
            out = self._lines[start:start + n]
        else:
            out, at, cps = [], start, []
            for c in self._cps_at[lo:hi]:
                out.extend(self._lines[at:c])
                try:
                    cps.append(Checkpoint(**json.loads(self._lines[c])["checkpoint"]))
                except (ValueError, TypeError, KeyError):
                    return None
                at = c + 1
            out.extend(self._lines[at:start + want])
            self._cps.extend(cps)
        self._i = start + want
        return out


class _Inline:
    """A stand-in for the verifier's read-ahead pool that runs each read when asked."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class _Verifier:
    def __init__(self, audit: AuditLog, file_mirror: type | None, grace: float) -> None:
        self.audit = audit
        self.store = audit._store
        self.mirror = audit._mirror if file_mirror else None
        self.grace = grace
        self.checked = 0
        self.notes: list[str] = []
        self.unmirrored_from: int | None = None  # first seq the mirror does not hold yet
        self._next: Any = None

    def run(self) -> VerifyResult:
        trusted = self.audit._trusted
        # The mirror is written after the database commits: fix its extent first, and
        # everything in it up to there must be in the database we read next.
        mirror_size = self.mirror.snapshot_size() if self.mirror is not None else 0
        checkpoints = self._all_checkpoints()
        by_seq = {cp.seq: cp for cp in checkpoints}
        signers: dict[str, int] = {}
        for cp in checkpoints:
            signers[cp.key_id] = signers.get(cp.key_id, 0) + 1
        signer_text = tuple(
            f"{k} ({trusted.node_of(k) or next(cp.node for cp in checkpoints if cp.key_id == k)}, {'trusted' if k in trusted else 'NOT trusted'})"
            f": {n} checkpoint{'s' if n != 1 else ''}" for k, n in signers.items())
        mirror_status = ("none configured" if self.audit._mirror is None else
                         f"{self.audit._mirror.spec}: not checkable (write-only sink; nothing was compared)"
                         if self.mirror is None else f"{self.mirror.spec}: not checked")
        head = 0
        mirror_cps: list[Checkpoint] = []
        try:
            lines = (_MirrorLines(self.mirror.line_blocks(mirror_size), mirror_cps)
                     if self.mirror is not None else None)
            head = self._walk(by_seq, lines, mirror_cps)
            late = [cp for cp in checkpoints if cp.seq > head]
            if late:
                raise _Bad(head + 1, f"checkpoint at seq {late[0].seq} vouches for {late[0].seq} entries but the "
                           f"log ends at seq {head}: entries from seq {head + 1} were removed")
            if self._next is not None:
                mirror_status = self._mirror_tail(self._next.next_entry, head, mirror_cps, by_seq)
        except _Bad as bad:
            if self.mirror is not None and mirror_status.endswith("not checked"):
                mirror_status = f"{self.mirror.spec}: checked up to seq {bad.seq - 1}"
            return VerifyResult(False, self.checked, bad.seq, bad.problem, len(checkpoints), signer_text,
                                checkpoints[-1].seq if checkpoints else None, 0, mirror_status, tuple(self.notes))
        last_cp = checkpoints[-1].seq if checkpoints else None
        unsigned = head - (last_cp or 0)
        if unsigned and self.audit._signer is not None:
            self.notes.append(f"{unsigned} entries after seq {last_cp or 0} are not yet under a signed checkpoint "
                              "(the chain and the mirror cover them)")
        return VerifyResult(True, self.checked, None, None, len(checkpoints), signer_text, last_cp, unsigned,
                            mirror_status, tuple(self.notes))

    def _all_checkpoints(self) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        while batch := self.store.audit_checkpoints(after_seq=out[-1].seq if out else 0, limit=10_000):
            out.extend(batch)
        return out

    def _walk(self, by_seq: dict[int, Checkpoint], lines: Any, mirror_cps: list[Checkpoint]) -> int:
        """The chain, checkpoints and mirror lines in one pass; returns the last seq.

        Each page is first checked in bulk (C-level comparisons of whole columns, hashing
        through ``map``, the mirror's lines compared as one text); only a page where
        anything differs is walked row by row, which finds and names the first problem.
        With a store that aggregates pages (``audit_chain_page``) the next page is read
        in a thread while this one is hashed: SQLite builds it without holding the GIL."""
        self._next = lines
        if getattr(self.store, "audit_chain_page", None) is not None:
            return self._walk_pages(by_seq, lines)
        expected, prev_hash = 1, GENESIS_HASH
        cp_seqs = sorted(by_seq)
        while True:
            rows = self._rows(expected - 1, _PAGE)
            if not rows:
                return expected - 1
            mirror = lines if self.unmirrored_from is None else None
            if not self._page_ok(rows, expected, prev_hash, by_seq, cp_seqs, mirror):
                self._page_rows(rows, expected, prev_hash, by_seq, mirror)
            expected, prev_hash = rows[-1][0] + 1, rows[-1][2]

    def _walk_pages(self, by_seq: dict[int, Checkpoint], lines: _MirrorLines | None) -> int:
        store = self.store
        expected, prev_hash = 1, GENESIS_HASH
        cp_seqs = sorted(by_seq)
        # inside a store transaction the pages must come from this thread's connection
        pool_size = 0 if self.audit._in_transaction() else 1
        with ThreadPoolExecutor(1, thread_name_prefix="audit-verify") if pool_size else _Inline() as pool:
            pending = pool.submit(store.audit_chain_page, after_seq=0, limit=_PAGE)
            try:
                while (page := pending.result()) is not None:
                    n, last = page[0], page[1]
                    pending = pool.submit(store.audit_chain_page, after_seq=last, limit=_PAGE)
                    mirror = lines if self.unmirrored_from is None else None
                    if not self._bulk_ok(page, expected, prev_hash, by_seq, cp_seqs, mirror):
                        rows = self._rows(expected - 1, n)
                        if not rows or rows[-1][0] != last:  # cannot happen in an append-only table
                            raise _Bad(expected, f"the entries from seq {expected} changed while being verified")
                        self._page_rows(rows, expected, prev_hash, by_seq, mirror)
                        prev_hash = rows[-1][2]
                    else:
                        prev_hash = page[4][-64:]
                    expected = last + 1
            finally:
                pending.cancel()
        return expected - 1

    def _rows(self, after_seq: int, limit: int) -> list[tuple]:
        rows_of = getattr(self.store, "audit_chain_rows", None)
        if rows_of is not None:
            return rows_of(after_seq=after_seq, limit=limit)
        return [(e.seq, e.prev_hash, e.hash, e.canonical())
                for e in self.store.audit_entries(after_seq=after_seq, limit=limit)]

    def _bulk_ok(self, page: tuple, expected: int, prev_hash: str, by_seq: dict[int, Checkpoint],
                 cp_seqs: list[int], mirror: _MirrorLines | None) -> bool:
        """``_page_ok`` for an aggregated page."""
        n, last, seqs, prevs, hashes, text, texts, odd = page
        if odd or texts != n or last != expected + n - 1 or seqs != ",".join(map(str, range(expected, last + 1))):
            return False
        if prevs != prev_hash + hashes[:-64]:
            return False
        canons = text.split("\n")
        if len(canons) != n:
            return False
        computed = list(map(_hexdigest, map(hashlib.sha256, map(str.encode, canons))))
        if "".join(computed) != hashes:
            return False
        trusted = self.audit._trusted
        for k in range(bisect.bisect_left(cp_seqs, expected), bisect.bisect_right(cp_seqs, last)):
            cp = by_seq[cp_seqs[k]]
            if cp.hash != computed[cp.seq - expected] or cp.count != cp.seq or trusted.check(cp):
                return False
        if mirror is not None:
            mark = mirror.mark()
            got = mirror.take(n)
            if got is None or got != list(
                    map("".join, zip(repeat('{"hash":"'), computed, repeat('",'), map(_tail, canons)))):
                mirror.reset(mark)
                return False
        self.checked += n
        return True

    def _page_ok(self, rows: list[tuple], expected: int, prev_hash: str, by_seq: dict[int, Checkpoint],
                 cp_seqs: list[int], mirror: _MirrorLines | None) -> bool:
        """True when the whole page is sound (and then counted); False to walk it row by row."""
        n = len(rows)
        seqs, prevs, hashes, canons = zip(*rows)
        # seq is the primary key, so ascending: first and last right means none missing
        if seqs[0] != expected or seqs[-1] != expected + n - 1:
            return False
        if prevs[0] != prev_hash or prevs[1:] != hashes[:-1]:
            return False
        if None in canons:
            return False
        computed = tuple(map(_hexdigest, map(hashlib.sha256, map(str.encode, canons))))
        if computed != hashes:
            canons = list(canons)
            for i in [i for i, (a, b) in enumerate(zip(computed, hashes)) if a != b]:
                # the stored text is not the hashed form (older rows, non-ASCII): re-derive it
                entry = self.store.audit_entries(after_seq=seqs[i] - 1, limit=1)[0]
                canons[i] = entry.canonical()
                if hashlib.sha256(canons[i].encode()).hexdigest() != hashes[i]:
                    return False
        trusted = self.audit._trusted
        for k in range(bisect.bisect_left(cp_seqs, expected), bisect.bisect_right(cp_seqs, seqs[-1])):
            cp = by_seq[cp_seqs[k]]
            if cp.hash != hashes[cp.seq - expected] or cp.count != cp.seq or trusted.check(cp):
                return False
        if mirror is not None:
            mark = mirror.mark()
            got = mirror.take(n)
            if got is None or got != list(map(_mirror_line, hashes, canons)):
                mirror.reset(mark)
                return False
        self.checked += n
        return True

    def _page_rows(self, rows: list[tuple], expected: int, prev_hash: str, by_seq: dict[int, Checkpoint],
                   mirror: _MirrorLines | None) -> None:
        """Row by row: raises _Bad at the first problem."""
        trusted = self.audit._trusted
        sha256 = hashlib.sha256
        mirror_next = mirror.next_entry if mirror is not None else None
        for seq, prev, h, canonical in rows:
            self.checked += 1
            if seq != expected:
                raise _Bad(expected, f"seq {expected} is missing (next is {seq})")
            if prev != prev_hash:
                raise _Bad(seq, "prev_hash does not match the previous entry")
            if canonical is None or sha256(canonical.encode()).hexdigest() != h:
                # the stored text is not the hashed form (older rows, non-ASCII): re-derive it
                entry = self.store.audit_entries(after_seq=seq - 1, limit=1)[0]
                canonical = entry.canonical()
                if sha256(canonical.encode()).hexdigest() != h:
                    raise _Bad(seq, "hash does not match the entry's contents")
            # the mirror first: it names the very entry, a checkpoint only a range
            if mirror_next is not None and not self._mirror_check(mirror_next, seq, h, canonical):
                self.unmirrored_from, mirror_next = seq, None
            cp = by_seq.get(seq)
            if cp is not None:
                problem = trusted.check(cp)
                if problem:
                    raise _Bad(seq, problem)
                if cp.hash != h or cp.count != seq:
                    raise _Bad(seq, f"the chain at seq {seq} is not what the checkpoint signed by {cp.key_id} "
                               f"({cp.node}, {cp.ts}) vouches for: an entry at or before seq {seq} "
                               "was altered and the chain recomputed")
            expected, prev_hash = seq + 1, h

    def _mirror_check(self, next_entry: Any, seq: int, h: str, canonical: str) -> bool:
        """Raises _Bad if the mirror's next entry line is not this entry; False at its end."""
        item = next_entry(seq)
        if item is None:
            return False
        n, line = item
        expected = _mirror_line(h, canonical)
        if line == expected:
            return True
        mine = json.loads(expected)
        try:
            theirs = json.loads(line)
            their_seq = int(theirs["seq"])
        except (ValueError, TypeError, KeyError):
            raise _Bad(seq, f"mirror line {n} (where seq {seq} belongs) is not a valid entry") from None
        if their_seq > seq:
            raise _Bad(seq, f"seq {seq} is missing from the mirror (line {n} holds seq {their_seq})")
        if their_seq < seq:
            raise _Bad(seq, f"mirror line {n} holds seq {their_seq} where seq {seq} belongs "
                       "(lines inserted or reordered)")
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise _Bad(seq, f"seq {seq} differs between the database and the mirror (line {n}) in {', '.join(differ)}")

    def _mirror_tail(self, next_entry: Any, head: int, mirror_cps: list[Checkpoint],
                     by_seq: dict[int, Checkpoint]) -> str:
        """After the walk: what the mirror holds beyond the database, what the database
        holds beyond the mirror, and the mirrored checkpoints."""
        assert self.mirror is not None
        spec = self.mirror.spec
        if self.unmirrored_from is None:
            extra = next_entry(head + 1)
            if extra is not None:
                n, line = extra
                try:
                    their_seq: Any = json.loads(line)["seq"]
                except (ValueError, TypeError, KeyError):
                    their_seq = "?"
                raise _Bad(head + 1, f"the mirror holds seq {their_seq} (line {n}) beyond the database's last "
                           f"entry {head}: entries from seq {head + 1} were removed from the database")
        while next_entry(head + 1) is not None:  # collect the remaining checkpoint lines
            pass
        now = self.audit._clock.now()
        mirrored_to = head if self.unmirrored_from is None else self.unmirrored_from - 1
        for cp in mirror_cps:
            mine = by_seq.get(cp.seq)
            if mine != cp:
                what = "is not in the database" if mine is None else "differs from the database's"
                raise _Bad(cp.seq, f"the mirror's checkpoint at seq {cp.seq} {what}")
        # (a mirror added to a running log holds the checkpoints signed after it started)
        mirrored_cps = {cp.seq for cp in mirror_cps}
        since = min(mirrored_cps, default=mirrored_to + 1)
        for cp in by_seq.values():
            if (cp.seq not in mirrored_cps and since < cp.seq <= mirrored_to
                    and not self._recent(cp.ts, now)):
                raise _Bad(cp.seq, f"checkpoint at seq {cp.seq} is in the database but not in the mirror")
        if self.unmirrored_from is None:
            return f"{spec}: matches the database ({head} entries, {len(mirror_cps)} checkpoints)"
        first = self.store.audit_entries(after_seq=self.unmirrored_from - 1, limit=1)[0]
        lag = head - mirrored_to
        if not self._recent(first.ts, now):
            raise _Bad(first.seq, f"seq {first.seq} ({first.ts}) and the {lag - 1} entries after it are in the "
                       "database but not in the mirror")
        return (f"{spec}: matches the database up to seq {mirrored_to}; the {lag} newest entries "
                f"(from {first.ts}) are not mirrored yet")

    def _recent(self, ts: str, now: datetime) -> bool:
        return (now - datetime.fromisoformat(ts)).total_seconds() < self.grace
