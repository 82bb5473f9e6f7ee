"""Verifying the audit log: the chain, the signed checkpoints and the file mirror in one pass.

``verify`` walks the chain from seq 1 and reports the first seq where anything is wrong:
the chain (seq, prev_hash, hash), a checkpoint (a trusted key, hash of the chain at its
seq, its link to the checkpoint before it; a signature only where the links do not reach
a later checked one: the newest checkpoint and the end of each unlinked run), the mirror (a file mirror must hold the same entries in the same
order; a row the mirror lacks is reported on every run until an auditor acknowledges
it), every entry's coverage by a signed batch checkpoint, and the witness (the database
must reach, and still hold, every checkpoint the witness saw). docs/audit.md has the
threat model.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import operator
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from emergency.audit.checkpoints import Checkpoint, TrustedKeys, record_line
from emergency.audit.entry import GENESIS_HASH, mirror_line
from emergency.audit.events import AuditEvent
from emergency.audit.mirror import FileMirror, Mirror
from emergency.audit.witness import FileWitness, parse_lines
from emergency.clock import Clock
from emergency.store import AuditLogStore


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
    witness: str = "none configured"
    signatures: int = 0  # checkpoint signatures checked (the links vouch for the others)


def verify(
    store: AuditLogStore,
    clock: Clock,
    trusted: TrustedKeys,
    sink: Mirror | None,
    *,
    witness: FileWitness | None = None,
    signed: bool,
    in_transaction: bool,
    grace: float = 0.0,
) -> VerifyResult:
    """Check the log in ``store`` from seq 1. ``trusted``: the keys whose checkpoints
    count; ``sink``: the configured mirror (only a file mirror can be compared);
    ``signed``: this node signs checkpoints (so unsigned entries are worth a note);
    ``in_transaction``: called inside a store transaction (then no read-ahead thread);
    ``witness``: the checkpoints seen outside the database; ``grace`` is no longer used
    (an entry reaches the mirror as it commits, and verify re-reads the mirror once for
    entries committed while it ran)."""
    return _Verifier(
        store,
        clock,
        trusted,
        sink,
        witness=witness,
        signed=signed,
        in_transaction=in_transaction,
        grace=grace,
    ).run()


def _range(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}–{b}"


def _ranges(spans: Sequence[tuple[int, int]]) -> str:
    text = ", ".join(_range(a, b) for a, b in spans[:5])
    return text + (f" and {len(spans) - 5} more ranges" if len(spans) > 5 else "")


def _spans(seqs: Sequence[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for s in seqs:
        if spans and spans[-1][1] == s - 1:
            spans[-1] = (spans[-1][0], s)
        else:
            spans.append((s, s))
    return spans


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

    def __init__(
        self, blocks: Iterator[tuple[list[str], list[int]]], mirror_cps: list[str], known: dict[str, int]
    ) -> None:
        self._blocks = blocks
        self._lines: list[str] = []
        self._cps_at: list[int] = []  # indices in _lines of checkpoint lines, ascending
        self._base = 0  # line number of _lines[0], minus 1
        self._i = 0  # the next line to read
        self._cps = mirror_cps  # the checkpoint lines read so far, as text
        self._known = known  # record_line -> seq of the database's checkpoints

    def _fill(self, need: int) -> bool:
        """At least ``need`` unread lines buffered; False when the file ends sooner."""
        while len(self._lines) - self._i < need:
            block = next(self._blocks, None)
            if block is None:
                return False
            if self._i:
                del self._lines[: self._i]
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
        del self._cps[mark[1] :]

    def next_entry(self, seq: int) -> tuple[int, str] | None:
        while self._fill(1):
            n, line = self._base + self._i + 1, self._lines[self._i]
            self._i += 1
            if line.startswith(_CHECKPOINT_PREFIX):
                if line[len(_CHECKPOINT_PREFIX) : -1] not in self._known:
                    try:
                        Checkpoint(**json.loads(line)["checkpoint"])
                    except (ValueError, TypeError, KeyError):
                        raise _Bad(seq, f"mirror line {n} is not a valid checkpoint record") from None
                self._cps.append(line)
                continue
            return n, line
        return None

    def take(self, n: int) -> list[str] | None:
        """The next ``n`` entry lines, or None (nothing read) when there are fewer or a
        checkpoint line among them is not one of the database's (the row-by-row walk names it)."""
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
            out = self._lines[start : start + n]
        else:
            out, at = [], start
            for c in self._cps_at[lo:hi]:
                out.extend(self._lines[at:c])
                at = c + 1
            out.extend(self._lines[at : start + want])
            cps = [self._lines[c] for c in self._cps_at[lo:hi]]
            known, cut = self._known, len(_CHECKPOINT_PREFIX)
            if not all(line[cut:-1] in known for line in cps):
                return None
            self._cps.extend(cps)
        self._i = start + want
        return out


class _Inline:
    """A stand-in for the verifier's read-ahead pool that runs each read when asked."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class _Verifier:
    def __init__(
        self,
        store: AuditLogStore,
        clock: Clock,
        trusted: TrustedKeys,
        sink: Mirror | None,
        *,
        witness: FileWitness | None,
        signed: bool,
        in_transaction: bool,
        grace: float,
    ) -> None:
        self.store = store
        self.clock = clock
        self.trusted = trusted
        self.sink = sink
        self.mirror = sink if isinstance(sink, FileMirror) else None
        self.signed = signed
        self.in_transaction = in_transaction
        self.grace = grace
        self.checked = 0
        self.notes: list[str] = []
        self.unmirrored_from: int | None = None  # first seq the mirror does not hold yet
        self.missing: dict[int, str] = {}  # seq -> its expected mirror line, not (yet) seen there
        self.witness = witness
        self._sign_at: set[int] = set()  # seqs of the checkpoints whose signature is checked
        self._broken: dict[int, Checkpoint | None] = {}  # seq -> the checkpoint before, its link not matching
        self.signatures = 0
        self._witness_lines: list[str] = []
        self._next: Any = None

    def run(self) -> VerifyResult:
        trusted = self.trusted
        # The mirror is written after the database commits: fix its extent first, and
        # everything in it up to there must be in the database we read next.
        # The same for the witness; then the database's head before its checkpoints, so
        # every entry up to that head has its batch's checkpoint in what we read.
        witness_lines = self.witness.lines() if self.witness is not None else []
        mirror_size = self.mirror.snapshot_size() if self.mirror is not None else 0
        first_head = self.store.last_audit_entry()
        db_head = first_head.seq if first_head is not None else 0
        checkpoints = self._all_checkpoints()
        self._links(checkpoints)
        self._witness_lines = witness_lines
        known = {record_line(cp): cp.seq for cp in checkpoints}
        by_seq = {cp.seq: cp for cp in checkpoints}
        signers: dict[str, int] = {}
        for cp in checkpoints:
            signers[cp.key_id] = signers.get(cp.key_id, 0) + 1
        signer_text = tuple(
            f"{k} ({trusted.node_of(k) or next(cp.node for cp in checkpoints if cp.key_id == k)}, {'trusted' if k in trusted else 'NOT trusted'})"
            f": {n} checkpoint{'s' if n != 1 else ''}"
            for k, n in signers.items()
        )
        mirror_status = (
            "none configured"
            if self.sink is None
            else f"{self.sink.spec}: not checkable (write-only sink; nothing was compared)"
            if self.mirror is None
            else f"{self.mirror.spec}: not checked"
        )
        head = 0
        mirror_cps: list[str] = []
        witness_status = "none configured" if self.witness is None else f"{self.witness.spec}: not checked"
        try:
            lines = (
                _MirrorLines(self.mirror.line_blocks(mirror_size), mirror_cps, known)
                if self.mirror is not None
                else None
            )
            head = self._walk(by_seq, lines, mirror_cps)
            late = [cp for cp in checkpoints if cp.seq > head]
            if late:
                raise _Bad(
                    head + 1,
                    f"checkpoint at seq {late[0].seq} vouches for {late[0].seq} entries but the "
                    f"log ends at seq {head}: entries from seq {head + 1} were removed",
                )
            if self.witness is not None:
                witness_status = self._witness_fast(known, head) or self._witness_check(head, by_seq)
            if self.signed:
                self._coverage(checkpoints, min(head, db_head))
            if self._next is not None:
                mirror_status = self._mirror_tail(self._next.next_entry, head, mirror_cps, by_seq, known)
        except _Bad as bad:
            if self.mirror is not None and mirror_status.endswith("not checked"):
                mirror_status = f"{self.mirror.spec}: checked up to seq {bad.seq - 1}"
            return VerifyResult(
                False,
                self.checked,
                bad.seq,
                bad.problem,
                len(checkpoints),
                signer_text,
                checkpoints[-1].seq if checkpoints else None,
                0,
                mirror_status,
                tuple(self.notes),
                witness_status,
                self.signatures,
            )
        last_cp = checkpoints[-1].seq if checkpoints else None
        unsigned = head - (last_cp or 0)
        if unsigned and self.signed:
            self.notes.append(
                f"{unsigned} entries after seq {last_cp or 0} are not yet under a signed checkpoint "
                "(the chain and the mirror cover them)"
            )
        return VerifyResult(
            True,
            self.checked,
            None,
            None,
            len(checkpoints),
            signer_text,
            last_cp,
            unsigned,
            mirror_status,
            tuple(self.notes),
            witness_status,
            self.signatures,
        )

    def _links(self, checkpoints: list[Checkpoint]) -> None:
        """Walks the checkpoints' own chain: each v3 checkpoint's ``prev`` must be the
        ``link()`` of the one before it. A signature is then needed only on the newest
        checkpoint and on the last of each run the links do not connect (before a
        checkpoint with no link: v1/v2, the log's first, or one whose writer could not
        vouch for its predecessor); a link that does not match is a failure, reported
        where the walk reaches it (``_problem``)."""
        before: Checkpoint | None = None
        for cp in checkpoints:
            if cp.prev is None or cp.prev == "":
                if before is not None:
                    self._sign_at.add(before.seq)
            elif before is None or cp.prev != before.link():
                self._broken[cp.seq] = before
                if before is not None:
                    self._sign_at.add(before.seq)
            before = cp
        if before is not None:
            self._sign_at.add(before.seq)

    def _signature(self, cp: Checkpoint) -> str | None:
        self.signatures += 1
        return self.trusted.check(cp)

    def _problem(self, cp: Checkpoint) -> tuple[int, str] | None:
        """What is wrong with ``cp`` (a trusted key, its signature where needed, its link),
        and the seq to name; None if nothing."""
        problem = self.trusted.check_fields(cp)
        if problem is None and (cp.seq in self._sign_at or cp.seq in self._broken):
            problem = self._signature(cp)
        if problem:
            return cp.seq, problem
        if cp.seq not in self._broken:
            return None
        # cp is genuine (its signature is good) and the one before it, if any, was checked
        # first (a run ends there): what it linked to is gone
        before = self._broken[cp.seq]
        start = before.seq + 1 if before is not None else 1
        witnessed = sorted(parse_lines(self._witness_lines)[0], key=lambda w: w.seq)
        seen = witnessed[bisect.bisect_left([w.seq for w in witnessed], start) :]
        if seen and seen[0].seq < cp.seq:
            return seen[0].seq, (
                f"the checkpoint at seq {seen[0].seq}, which the witness saw at {seen[0].ts}, was deleted from "
                f"the database (the checkpoint at seq {cp.seq} links to it)"
            )
        linked = (
            f"the checkpoint at seq {cp.seq} (signed by {cp.key_id}, {cp.node}, {cp.ts}) links to a checkpoint "
            f"that is no longer in the database ({'the one at seq ' + str(before.seq) if before else 'none'} "
            "precedes it)"
        )
        if start < cp.first:
            one = start == cp.first - 1
            return start, (
                f"seq {_range(start, cp.first - 1)} {'is' if one else 'are'} not covered by any signed checkpoint: "
                f"{'its' if one else 'their'} checkpoint was deleted by someone without the node's signing key; "
                + linked
            )
        return start, f"a checkpoint was deleted by someone without the node's signing key: {linked}"

    def _witness_fast(self, known: dict[str, int], head: int) -> str | None:
        """The usual case, compared as text: every witness line is one of the database's
        checkpoints as written, none beyond ``head``. None: look closer (``_witness_check``)."""
        assert self.witness is not None
        lines = [line for line in self._witness_lines if line]
        seqs = [known.get(line, -1) for line in lines]
        if not lines or min(seqs) < 0 or max(seqs) > head:
            return None
        return (
            f"{self.witness.spec}: the database holds all {len(lines)} witnessed checkpoints "
            f"(newest at seq {max(seqs)})"
        )

    def _witness_check(self, head: int, by_seq: dict[int, Checkpoint]) -> str:
        """The database must reach the newest witnessed checkpoint and still hold every
        witnessed checkpoint as it was signed."""
        assert self.witness is not None
        witnessed, torn = parse_lines(self._witness_lines)
        spec = self.witness.spec
        if torn:
            self.notes.append(f"witness lines {', '.join(map(str, torn[:5]))} are not checkpoints (torn or edited)")
        if not witnessed:
            return f"{spec}: empty (nothing witnessed yet)"
        newest = max(witnessed, key=lambda cp: cp.seq)
        if newest.seq > head:
            raise _Bad(
                head + 1,
                f"seq {head + 1}–{newest.seq} are missing: the witness saw seq {newest.seq} at {newest.ts} "
                f"({spec}), the database ends at seq {head} (truncated or rolled back)",
            )
        for cp in sorted(witnessed, key=lambda cp: cp.seq):
            mine = by_seq.get(cp.seq)
            if mine != cp:
                what = "was deleted from the database" if mine is None else "differs in the database"
                raise _Bad(cp.seq, f"the checkpoint at seq {cp.seq}, which the witness saw at {cp.ts}, {what}")
        return f"{spec}: the database holds all {len(witnessed)} witnessed checkpoints (newest at seq {newest.seq})"

    def _coverage(self, checkpoints: list[Checkpoint], head: int) -> None:
        """Every entry up to ``head`` must lie in a signed checkpoint's batch (each was
        checked against the chain during the walk)."""
        covered, gaps = 0, []
        for cp in checkpoints:
            if cp.seq > head:
                break
            if cp.first > covered + 1:
                gaps.append((covered + 1, cp.first - 1))
            covered = max(covered, cp.seq)
        if covered < head:
            gaps.append((covered + 1, head))
        if gaps:
            (a, b), more = gaps[0], gaps[1:]
            also = f"; also {_ranges(more)}" if more else ""
            raise _Bad(
                a,
                f"seq {_range(a, b)} {'is' if a == b else 'are'} not covered by any signed checkpoint: "
                f"written, or {'its' if a == b else 'their'} checkpoint deleted, by someone without the node's "
                f"signing key{also}",
            )

    def _all_checkpoints(self) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        while batch := self.store.audit_checkpoints(after_seq=out[-1].seq if out else 0, limit=10_000):
            out.extend(batch)
        return out

    def _walk(self, by_seq: dict[int, Checkpoint], lines: Any, mirror_cps: list[str]) -> int:
        """The chain, checkpoints and mirror lines in one pass; returns the last seq.

        Each page is first checked in bulk (C-level comparisons of whole columns, hashing
        through ``map``, the mirror's lines compared as one text); only a page where
        anything differs is walked row by row, which finds and names the first problem.
        With a store that aggregates pages (``audit_chain_page``) the next page is read
        in a thread while this one is hashed: SQLite builds it without holding the GIL."""
        self._next = lines
        pages = getattr(self.store, "audit_chain_page", None)
        if pages is not None:
            return self._walk_pages(by_seq, lines, pages)
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

    def _walk_pages(
        self, by_seq: dict[int, Checkpoint], lines: _MirrorLines | None, pages: Callable[..., tuple[Any, ...] | None]
    ) -> int:
        expected, prev_hash = 1, GENESIS_HASH
        cp_seqs = sorted(by_seq)
        # inside a store transaction the pages must come from this thread's connection
        pool_size = 0 if self.in_transaction else 1
        with ThreadPoolExecutor(1, thread_name_prefix="audit-verify") if pool_size else _Inline() as pool:
            pending = pool.submit(pages, after_seq=0, limit=_PAGE)
            try:
                while (page := pending.result()) is not None:
                    n, last = page[0], page[1]
                    pending = pool.submit(pages, after_seq=last, limit=_PAGE)
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

    def _rows(self, after_seq: int, limit: int) -> list[tuple[Any, ...]]:
        rows_of = getattr(self.store, "audit_chain_rows", None)
        if rows_of is not None:
            rows: list[tuple[Any, ...]] = rows_of(after_seq=after_seq, limit=limit)
            return rows
        return [
            (e.seq, e.prev_hash, e.hash, e.canonical())
            for e in self.store.audit_entries(after_seq=after_seq, limit=limit)
        ]

    def _bulk_ok(
        self,
        page: tuple[Any, ...],
        expected: int,
        prev_hash: str,
        by_seq: dict[int, Checkpoint],
        cp_seqs: list[int],
        mirror: _MirrorLines | None,
    ) -> bool:
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
        for k in range(bisect.bisect_left(cp_seqs, expected), bisect.bisect_right(cp_seqs, last)):
            cp = by_seq[cp_seqs[k]]
            if cp.hash != computed[cp.seq - expected] or self._problem(cp):
                return False
        if mirror is not None:
            mark = mirror.mark()
            got = mirror.take(n)
            if got is None or got != list(
                map("".join, zip(repeat('{"hash":"'), computed, repeat('",'), map(_tail, canons)))
            ):
                mirror.reset(mark)
                return False
        self.checked += n
        return True

    def _page_ok(
        self,
        rows: list[tuple[Any, ...]],
        expected: int,
        prev_hash: str,
        by_seq: dict[int, Checkpoint],
        cp_seqs: list[int],
        mirror: _MirrorLines | None,
    ) -> bool:
        """True when the whole page is sound (and then counted); False to walk it row by row."""
        n = len(rows)
        seqs, prevs, hashes, texts = zip(*rows, strict=True)
        canons: Sequence[Any] = texts
        # seq is the primary key, so ascending: first and last right means none missing
        if seqs[0] != expected or seqs[-1] != expected + n - 1:
            return False
        if prevs[0] != prev_hash or prevs[1:] != hashes[:-1]:
            return False
        if None in canons:
            return False
        computed = tuple(map(_hexdigest, map(hashlib.sha256, map(str.encode, canons))))
        if computed != hashes:
            fixed = list(canons)
            for i in [i for i, (a, b) in enumerate(zip(computed, hashes, strict=True)) if a != b]:
                # the stored text is not the hashed form (older rows, non-ASCII): re-derive it
                entry = self.store.audit_entries(after_seq=seqs[i] - 1, limit=1)[0]
                fixed[i] = entry.canonical()
                if hashlib.sha256(fixed[i].encode()).hexdigest() != hashes[i]:
                    return False
            canons = fixed
        for k in range(bisect.bisect_left(cp_seqs, expected), bisect.bisect_right(cp_seqs, seqs[-1])):
            cp = by_seq[cp_seqs[k]]
            if cp.hash != hashes[cp.seq - expected] or self._problem(cp):
                return False
        if mirror is not None:
            mark = mirror.mark()
            got = mirror.take(n)
            if got is None or got != list(map(mirror_line, hashes, canons)):
                mirror.reset(mark)
                return False
        self.checked += n
        return True

    def _page_rows(
        self,
        rows: list[tuple[Any, ...]],
        expected: int,
        prev_hash: str,
        by_seq: dict[int, Checkpoint],
        mirror: _MirrorLines | None,
    ) -> None:
        """Row by row: raises _Bad at the first problem."""
        sha256 = hashlib.sha256
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
            if mirror is not None and not self._mirror_check(mirror, seq, h, canonical):
                self.unmirrored_from, mirror = seq, None
            cp = by_seq.get(seq)
            if cp is not None:
                problem = self._problem(cp)
                if problem:
                    raise _Bad(*problem)
                if cp.hash != h:
                    raise _Bad(
                        seq,
                        f"the chain at seq {seq} is not what the checkpoint signed by {cp.key_id} "
                        f"({cp.node}, {cp.ts}) vouches for: an entry at or before seq {seq} "
                        "was altered and the chain recomputed",
                    )
            expected, prev_hash = seq + 1, h

    def _mirror_check(self, mirror: _MirrorLines, seq: int, h: str, canonical: str) -> bool:
        """Raises _Bad if the mirror's next entry line is not this entry; False at its end.
        A line further on (another process's batch landed first) puts this seq aside in
        ``missing``; a line for a seq put aside settles it."""
        expected = mirror_line(h, canonical)
        while True:
            mark = mirror.mark()
            item = mirror.next_entry(seq)
            if item is None:
                return False
            n, line = item
            if line == expected:
                return True
            try:
                theirs = json.loads(line)
                their_seq = int(theirs["seq"])
            except (ValueError, TypeError, KeyError):
                raise _Bad(seq, f"mirror line {n} (where seq {seq} belongs) is not a valid entry") from None
            if their_seq > seq:
                mirror.reset(mark)
                self.missing[seq] = expected
                return True
            if their_seq < seq and self.missing.get(their_seq) == line:
                del self.missing[their_seq]
                continue
            if their_seq < seq:
                raise _Bad(
                    their_seq if their_seq in self.missing else seq,
                    f"mirror line {n} holds seq {their_seq} where seq {seq} belongs (lines inserted or reordered)",
                )
            mine = json.loads(expected)
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise _Bad(seq, f"seq {seq} differs between the database and the mirror (line {n}) in {', '.join(differ)}")

    def _mirror_tail(
        self,
        next_entry: Any,
        head: int,
        mirror_cps: list[str],
        by_seq: dict[int, Checkpoint],
        known: dict[str, int],
    ) -> str:
        """After the walk: what the mirror holds beyond the database, what the database
        holds that the mirror does not (reported on every run until an auditor
        acknowledges it), and the mirrored checkpoints."""
        assert self.mirror is not None
        spec = self.mirror.spec
        if self.unmirrored_from is None:
            while (extra := next_entry(head + 1)) is not None:
                n, line = extra
                try:
                    their_seq: Any = json.loads(line)["seq"]
                except (ValueError, TypeError, KeyError):
                    their_seq = "?"
                if self.missing.get(their_seq) == line:
                    del self.missing[their_seq]
                    continue
                raise _Bad(
                    head + 1,
                    f"the mirror holds seq {their_seq} (line {n}) beyond the database's last "
                    f"entry {head}: entries from seq {head + 1} were removed from the database",
                )
        absent = sorted(self.missing)
        if self.unmirrored_from is not None:
            absent += range(self.unmirrored_from, head + 1)
        if absent:
            absent = self._arrived_since(absent)
        absent_set = set(absent)
        mirrored_cps: set[int] = set()
        for line in mirror_cps:
            seq = known.get(line[len(_CHECKPOINT_PREFIX) : -1])
            if seq is None:
                cp = Checkpoint(**json.loads(line)["checkpoint"])
                mine = by_seq.get(cp.seq)
                what = "is not in the database" if mine is None else "differs from the database's"
                raise _Bad(cp.seq, f"the mirror's checkpoint at seq {cp.seq} {what}")
            mirrored_cps.add(seq)
        # (a mirror added to a running log holds the checkpoints signed after it started)
        since = min(mirrored_cps, default=head + 1)
        for cp in by_seq.values():
            if cp.seq not in mirrored_cps and since < cp.seq <= head and cp.seq not in absent_set:
                raise _Bad(cp.seq, f"checkpoint at seq {cp.seq} is in the database but not in the mirror")
        if not absent:
            return f"{spec}: matches the database ({head} entries, {len(mirror_cps)} checkpoints)"
        acked = self._acknowledged_through()
        open_ = [s for s in absent if s > acked]
        spans = _spans(absent)
        if open_:
            first = self.store.audit_entries(after_seq=open_[0] - 1, limit=1)[0]
            raise _Bad(
                open_[0],
                f"seq {_ranges(_spans(open_))} {'is' if len(open_) == 1 else 'are'} in the database but not in "
                f"the mirror (the first written {first.ts}): added to the database directly, or the mirror "
                "write was lost; acknowledge with 'sightline audit acknowledge' once explained",
            )
        self.notes.append(
            f"seq {_ranges(spans)} {'is' if len(absent) == 1 else 'are'} not in the mirror "
            f"(acknowledged through seq {acked})"
        )
        return f"{spec}: matches the database except {len(absent)} acknowledged entries ({_ranges(spans)})"

    def _arrived_since(self, absent: list[int]) -> list[int]:
        """Of ``absent``, those still not in the mirror now: an entry committed while
        verify ran reaches the mirror just after; a forged one never does."""
        assert self.mirror is not None
        want = set(absent)
        seen: dict[int, str] = {}
        for _, line in self.mirror.lines(self.mirror.snapshot_size()):
            if line.startswith('{"hash":'):
                try:
                    seq = int(json.loads(line)["seq"])
                except (ValueError, TypeError, KeyError):
                    continue
                if seq in want:
                    seen[seq] = line
        still = []
        for seq in absent:
            got = seen.get(seq)
            if got is not None:
                entry = self.store.audit_entries(after_seq=seq - 1, limit=1)
                if entry and entry[0].seq == seq and entry[0].mirror_line() == got:
                    continue
            still.append(seq)
        return still

    def _acknowledged_through(self) -> int:
        """The highest seq an auditor acknowledged as missing from the mirror (0: none)."""
        acks = self.store.audit_entries_of_type(AuditEvent.AUDIT_MIRROR_ACKNOWLEDGED, limit=100)
        through = [a.details.get("through") for a in acks]
        return max((t for t in through if isinstance(t, int)), default=0)
