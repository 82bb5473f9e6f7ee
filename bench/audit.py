"""Audit log benchmark: sustained durable append rate, and verify time for a large log.

    .venv/bin/python bench/audit.py                          # both, defaults below
    .venv/bin/python bench/audit.py --threads 32 --seconds 10 --mirror
    .venv/bin/python bench/audit.py --skip-append --entries 1000000 --mirror

Append: a fresh SQLite database (WAL, synchronous=FULL: every commit is fsync'd, as in
production) in --dir; --threads threads call ``AuditLog.append`` concurrently for
--seconds; each call returns only once its entry is committed. Concurrent callers share
commits (group commit), so the rate is entries/s, with commits/s and entries per commit
shown. Every commit batch is signed (a checkpoint in the same transaction) and its
checkpoint appended to the witness file (one more fsync per commit), as in production;
--mirror adds the file mirror (another fsync per commit).

Verify: --entries entries written in bulk (``append_many`` of --batch entries, default
1000, each signed as its batch; smaller batches share a transaction, up to 1000 entries,
to fill quickly: --batch 1 makes the log of a quiet gateway, one checkpoint per entry),
then ``AuditLog.verify()`` timed twice: hash chain, every checkpoint's hash and link to
the one before (message v3), the signatures where the links do not vouch (here: the
newest), every entry's coverage by a batch checkpoint, the witness, and with --mirror the
line-by-line mirror comparison. Both runs do the same work (nothing is remembered
between runs).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emergency.audit import AuditLog
from emergency.audit.checkpoints import CheckpointSigner
from emergency.audit.mirror import FileMirror
from emergency.audit.witness import WITNESS_FILE, FileWitness
from emergency.clock import SystemClock
from emergency.model import Actor
from emergency.site import Role
from emergency.sqlite_store import SqliteStore

OFFICER = Actor("officer-17", Role.OFFICER, "village-pd", (), mfa=True)


def open_log(work: Path, mirror: bool, every: int = 1000) -> tuple[SqliteStore, AuditLog]:
    store = SqliteStore(work / "audit.db")
    signer = CheckpointSigner.load_or_create(work / "secrets", "bench")
    audit = AuditLog(
        store,
        SystemClock(),
        "bench",
        signer=signer,
        checkpoint_every=every,
        mirror=FileMirror(work / "audit.jsonl") if mirror else None,
        witness=FileWitness(work / "secrets" / WITNESS_FILE),
    )
    return store, audit


def bench_append(work: Path, threads: int, seconds: float, mirror: bool) -> None:
    store, audit = open_log(work, mirror)
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def worker(i: int) -> None:
        mine = latencies[i]
        n = 0
        while (t0 := time.perf_counter()) < stop:
            audit.append(
                "view.started",
                actor=OFFICER,
                object=f"camera:c{n % 40}",
                source="10.20.30.40",
                reason="live grant",
                details={"session": f"s-{i}-{n}", "grant": "g-1", "stream": "sub"},
            )
            mine.append(time.perf_counter() - t0)
            n += 1

    t_start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t_start
    all_lat = sorted(x for lat in latencies for x in lat)
    n = len(all_lat)
    result = audit.verify(mirror_grace_seconds=3600)
    print(
        f"append: {threads} threads x {seconds:.0f} s, durable commits (WAL, synchronous=FULL)"
        f"{', file mirror fsync per commit' if mirror else ''}"
    )
    print(
        f"  {n} entries in {elapsed:.2f} s = {n / elapsed:,.0f} entries/s; {audit.batches} commits "
        f"({audit.batches / elapsed:,.0f}/s, {n / max(audit.batches, 1):.1f} entries/commit)"
    )
    print(
        f"  latency per append: p50 {statistics.median(all_lat) * 1e3:.2f} ms, "
        f"p99 {all_lat[int(n * 0.99)] * 1e3:.2f} ms, max {all_lat[-1] * 1e3:.2f} ms"
    )
    print(f"  checkpoints: {result.checkpoints}; verify ok={result.ok}")
    store.close()


def bench_verify(work: Path, entries: int, mirror: bool, chunk: int = 1000) -> None:
    store, audit = open_log(work, mirror, every=1000)
    t0 = time.perf_counter()
    per_commit = max(1, 1000 // chunk)  # small batches: several per transaction, each signed
    for outer in range(0, entries, chunk * per_commit):
        with store.transaction():
            for start in range(outer, min(entries, outer + chunk * per_commit), chunk):
                audit.append_many(
                    [
                        {
                            "event_type": "view.started",
                            "actor": OFFICER,
                            "object": f"camera:c{(start + i) % 40}",
                            "source": "10.20.30.40",
                            "reason": "live grant",
                            "details": {"session": f"s-{start + i}", "grant": "g-1", "stream": "sub"},
                        }
                        for i in range(min(chunk, entries - start))
                    ]
                )
    fill = time.perf_counter() - t0
    size = (work / "audit.db").stat().st_size + (work / "audit.db-wal").stat().st_size
    print(
        f"verify: {entries:,} entries written in bulk in {fill:.1f} s ({entries / fill:,.0f}/s); "
        f"database {size / 1e6:.0f} MB"
        + (f", mirror {(work / 'audit.jsonl').stat().st_size / 1e6:.0f} MB" if mirror else "")
    )
    for label in ("first run", "second run"):
        t0 = time.perf_counter()
        result = audit.verify(mirror_grace_seconds=3600)
        took = time.perf_counter() - t0
        print(
            f"  verify ({label}): {took:.2f} s, {result.checked / took:,.0f} entries/s; ok={result.ok}, "
            f"{result.checkpoints} checkpoints, {result.signatures} signatures checked, mirror: {result.mirror}"
        )
    store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help="work directory (default: a temporary one under the repo)")
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--mirror", action="store_true", help="also write (and verify) the file mirror")
    p.add_argument(
        "--batch", type=int, default=1000, help="verify: entries per transaction (= per checkpoint) when filling"
    )
    p.add_argument("--skip-append", action="store_true")
    p.add_argument("--skip-verify", action="store_true")
    args = p.parse_args()
    base = Path(args.dir) if args.dir else Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=base))
    try:
        if not args.skip_append:
            (work / "append").mkdir()
            bench_append(work / "append", args.threads, args.seconds, args.mirror)
        if not args.skip_verify:
            (work / "verify").mkdir()
            bench_verify(work / "verify", args.entries, args.mirror, args.batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
