"""The witness: every signed checkpoint, also written outside the database.

A checkpoint in the database proves what the log held up to its seq, but not that the
log once went further: whoever can write the database can cut off the tail and the
checkpoints that vouch for it, or restore an older copy, and what is left still
verifies. The witness is an append-only file (``O_APPEND``, fsync per write, owner-only)
that the writer appends each commit batch's checkpoint to, after the commit, from the
checkpoint it just signed (never from rows read back). ``verify`` compares the database
with it: the database's head must reach the newest witnessed checkpoint, and every
witnessed checkpoint must still be in the database unchanged.

``[gateway] audit_witness = "file:PATH"`` chooses the file (best on another volume, or
one the database's administrators cannot write); the default is ``audit-witness.jsonl``
in the data dir's ``secrets`` folder, beside the signing key (0700).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from emergency.audit.checkpoints import Checkpoint, record_line

WITNESS_FILE = "audit-witness.jsonl"


class FileWitness:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._torn_checked = False

    @property
    def spec(self) -> str:
        return f"file:{self.path}"

    def write(self, cp: Checkpoint) -> None:
        line = record_line(cp) + "\n"
        with self._lock:
            if not self._torn_checked:  # a crash mid-write left half a line: end it first
                with open(self.path, "rb") as fh:
                    end = fh.seek(0, os.SEEK_END)
                    if end and (fh.seek(end - 1) or True) and fh.read(1) != b"\n":
                        line = "\n" + line
                self._torn_checked = True
            data = memoryview(line.encode())
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)

    def lines(self) -> list[str]:
        """The file's lines as written (verify compares them as text first)."""
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            return fh.read().split("\n")

    def read(self) -> tuple[list[Checkpoint], list[int]]:
        """The witnessed checkpoints, and the numbers of lines that are not one (torn or edited)."""
        return parse_lines(self.lines())

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def parse_lines(lines: list[str]) -> tuple[list[Checkpoint], list[int]]:
    """Witness lines as checkpoints, and the numbers of those that are not one."""
    kept = [line for line in lines if line.strip()]
    try:  # all at once (one decode call, not one per line); line by line if any is torn
        return [Checkpoint(**d) for d in json.loads("[" + ",".join(kept) + "]")], []
    except (ValueError, TypeError):
        pass
    cps, bad = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cps.append(Checkpoint(**json.loads(line)))
        except (ValueError, TypeError):
            bad.append(n)
    return cps, bad


def open_witness(spec: str | None, default: Path | None) -> FileWitness | None:
    """``file:PATH``; None (no spec) means the file at ``default`` (None: no witness)."""
    if not spec:
        return FileWitness(default) if default is not None else None
    kind, _, rest = spec.partition(":")
    if kind != "file" or not rest:
        raise ValueError(f"audit_witness must be 'file:PATH', not {spec!r}")
    return FileWitness(rest)
