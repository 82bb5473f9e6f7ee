"""A copy of the audit log outside the database (NIST AU-9(2): records on a separate system).

``[gateway] audit_mirror`` selects the sink:

- ``file:/path/audit.jsonl`` — append-only JSON lines (``O_APPEND``, fsync after every
  write, like the database's ``synchronous=FULL``). One line per entry with every field
  and both hashes (``{"hash": ..., <the entry's canonical JSON>}``), plus one line per
  signed checkpoint (``{"checkpoint": {...}}``). It always starts at seq 1 (a mirror
  added to an existing log is back-filled), so ``sightline audit verify`` can compare it
  line by line with the database.
- ``syslog:`` (local syslog, ``/dev/log``) or ``syslog:HOST:PORT`` (UDP) — one message
  per entry and checkpoint. It cannot be read back, so verify reports it "not checkable".

The mirror is written after the database commit, from committed rows; whatever writes
lines takes the file lock and starts after the last entry line already there, so several
processes (the gateway, a CLI command) can share one file without duplicates or gaps.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from emergency.audit.checkpoints import Checkpoint
from emergency.audit.entry import AuditEntry

log = logging.getLogger(__name__)

Reader = Callable[[int, int], list[AuditEntry]]  # (after_seq, limit) -> committed entries in seq order
_TAIL_CHUNK = 1 << 16
_READ_BATCH = 5000


def checkpoint_line(cp: Checkpoint) -> str:
    return json.dumps({"checkpoint": asdict(cp)}, sort_keys=True, separators=(",", ":"))


class FileMirror:
    checkable = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self.synced_seq = 0  # last entry seq this process knows is in the file
        self._size = -1  # the file's size after our last write

    @property
    def spec(self) -> str:
        return f"file:{self.path}"

    def attach(self, head_seq: int) -> None:
        """Nothing to do: the file says where it ends."""

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def sync(self, known: list[AuditEntry], read: Reader) -> None:
        """Append every committed entry after the file's last one: ``known`` (just committed)
        and whatever ``read`` returns for the gap before it (or after it, up to the head)."""
        with self._lock, _flock(self._fd):
            # the file as this process left it: its tail is what we wrote last
            size = os.fstat(self._fd).st_size
            tail = self.synced_seq if size == self._size and self.synced_seq else self._tail_seq()
            lines: list[str] = []
            next_seq = tail + 1
            known = [e for e in known if e.seq >= next_seq]
            stop = known[0].seq if known else None
            while stop is None or next_seq < stop:
                batch = read(next_seq - 1, _READ_BATCH)
                if stop is not None:
                    batch = [e for e in batch if e.seq < stop]
                if not batch:
                    break
                lines.extend(e.mirror_line() for e in batch)
                next_seq = batch[-1].seq + 1
                if len(lines) >= _READ_BATCH:
                    self._write(lines)
                    lines = []
            if known and known[0].seq == next_seq:
                lines.extend(e.mirror_line() for e in known)
                next_seq = known[-1].seq + 1
            if lines:
                self._write(lines)
            self.synced_seq = next_seq - 1
            self._size = os.fstat(self._fd).st_size

    def write_checkpoint(self, cp: Checkpoint) -> None:
        with self._lock, _flock(self._fd):
            self._write([checkpoint_line(cp)])
            if self._size >= 0:
                self._size = os.fstat(self._fd).st_size

    def _write(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def _tail_seq(self) -> int:
        """The seq of the last complete entry line (0 for an empty file). A torn last line
        (a crash mid-write) is closed with a newline first; verify reports it."""
        with open(self.path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end == 0:
                return 0
            fh.seek(end - 1)
            if fh.read(1) != b"\n":
                os.write(self._fd, b"\n")
                end += 1
            pos = end
            buf = b""
            while pos > 0:
                step = min(_TAIL_CHUNK, pos)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + buf
                lines = buf.split(b"\n")
                # lines[0] may be partial unless we reached the start of the file
                for raw in reversed(lines if pos == 0 else lines[1:]):
                    if raw.startswith(b'{"hash":'):
                        try:
                            return int(json.loads(raw)["seq"])
                        except (ValueError, KeyError, TypeError):
                            continue
            return 0

    def snapshot_size(self) -> int:
        return os.stat(self.path).st_size

    def lines(self, size: int) -> Iterator[tuple[int, str]]:
        """(line number, line without newline) for the first ``size`` bytes of the file."""
        with open(self.path, "rb") as fh:
            read = 0
            for n, raw in enumerate(fh, 1):
                read += len(raw)
                if read > size:
                    return
                yield n, raw.rstrip(b"\n").decode("utf-8", "replace")

    def line_blocks(self, size: int, block: int = 1 << 23) -> Iterator[tuple[list[str], list[int]]]:
        """``lines(size)`` in blocks, for verifying large files: (lines, indices of the lines
        in the block that start with ``{"checkpoint":``), read, decoded and split in bulk."""
        with open(self.path, "rb") as fh:
            left, carry = size, b""
            while left > 0:
                data = fh.read(min(block, left))
                if not data:
                    break
                left -= len(data)
                data = carry + data
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                if cut:
                    yield _split(data[: cut - 1])
            # a last line without a newline counts when the file ends there (as in lines())
            if carry and not fh.read(1):
                yield _split(carry)


def _split(data: bytes) -> tuple[list[str], list[int]]:
    text = data.decode("utf-8", "replace")
    marks, line, at = [], 0, 0
    if text.startswith(_CHECKPOINT_PREFIX):
        marks.append(0)
    while (pos := text.find("\n" + _CHECKPOINT_PREFIX, at)) >= 0:
        line += text.count("\n", at, pos + 1)
        marks.append(line)
        at = pos + 1
    return text.split("\n"), marks


_CHECKPOINT_PREFIX = '{"checkpoint":'


class SyslogMirror:
    """Local syslog or a UDP syslog collector; write-only."""

    checkable = False

    def __init__(self, address: str | tuple[str, int] = "/dev/log") -> None:
        self.address = address
        self._handler = logging.handlers.SysLogHandler(
            address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV
        )
        self._handler.ident = "sightline-audit: "
        self._lock = threading.Lock()
        self.synced_seq = 0

    @property
    def spec(self) -> str:
        a = self.address
        return "syslog:" if a == "/dev/log" else f"syslog:{a[0]}:{a[1]}" if isinstance(a, tuple) else f"syslog:{a}"

    def attach(self, head_seq: int) -> None:
        """Syslog keeps no position we could read: start after what the database holds now."""
        self.synced_seq = head_seq

    def close(self) -> None:
        self._handler.close()

    def sync(self, known: list[AuditEntry], read: Reader) -> None:
        with self._lock:
            while True:
                fresh = [e for e in known if e.seq > self.synced_seq]
                if fresh and fresh[0].seq == self.synced_seq + 1:
                    batch = fresh
                else:
                    batch = read(self.synced_seq, _READ_BATCH)
                    if fresh:
                        batch = [e for e in batch if e.seq < fresh[0].seq]
                    if not batch:
                        return
                for e in batch:
                    self._emit(e.mirror_line())
                self.synced_seq = batch[-1].seq

    def write_checkpoint(self, cp: Checkpoint) -> None:
        with self._lock:
            self._emit(checkpoint_line(cp))

    def _emit(self, line: str) -> None:
        record = logging.LogRecord("sightline.audit", logging.INFO, __file__, 0, line, None, None)
        self._handler.emit(record)


Mirror = FileMirror | SyslogMirror


def open_mirror(spec: str | None, base: Path | None = None) -> Mirror | None:
    """``file:PATH`` (relative to ``base``), ``syslog:``, ``syslog:/dev/log`` or ``syslog:HOST:PORT``."""
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        path = Path(rest)
        return FileMirror(path if path.is_absolute() or base is None else base / path)
    if kind == "syslog":
        if not rest or rest.startswith("/"):
            return SyslogMirror(rest or "/dev/log")
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return SyslogMirror((host.strip("[]"), int(port)))
    raise ValueError(f"audit_mirror must be 'file:PATH', 'syslog:' or 'syslog:HOST:PORT', not {spec!r}")


class _flock:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
