"""A copy of the audit log outside the database (NIST AU-9(2): records on a separate system).

``[gateway] audit_mirror`` selects the sink:

- ``file:/path/audit.jsonl`` — append-only JSON lines (``O_APPEND``, fsync after every
  write, like the database's ``synchronous=FULL``). One line per entry with every field
  and both hashes (``{"hash": ..., <the entry's canonical JSON>}``), plus one line per
  signed checkpoint (``{"checkpoint": {...}}``), which ``sightline audit verify``
  compares line by line with the database.
- ``syslog:`` (local syslog, ``/dev/log``) or ``syslog:HOST:PORT`` (UDP) — one message
  per entry and checkpoint. It cannot be read back, so verify reports it "not checkable".

The mirror is written from the append path: after each commit, the writer appends the
batch it just committed (and the batch's checkpoint), never rows read back from the
database, so a row someone put into the database directly never reaches the mirror.
Several processes (the gateway, a CLI command) share one file under the file lock; their
batches may land slightly out of seq order, which verify accepts. A mirror added to an
existing log starts at the entries appended after it was added; verify reports the
older ones until an auditor acknowledges them (``sightline audit acknowledge``).
"""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from emergency.audit.checkpoints import Checkpoint, record_line
from emergency.audit.entry import AuditEntry

log = logging.getLogger(__name__)


def checkpoint_line(cp: Checkpoint) -> str:
    return '{"checkpoint":' + record_line(cp) + "}"


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

    def write(self, entries: list[AuditEntry], cp: Checkpoint | None) -> None:
        """Append one commit batch as the writer made it: its entry lines, then the
        checkpoint that signs it. Never rows read back from the database, so a row
        someone else put there never reaches the mirror and verify keeps reporting it."""
        lines = [e.mirror_line() for e in entries]
        if cp is not None:
            lines.append(checkpoint_line(cp))
        if not lines:
            return
        with self._lock, _flock(self._fd):
            if self._size != os.fstat(self._fd).st_size:  # first write, or another process wrote
                self._end_torn_line()
            self._write(lines)
            self.synced_seq = max(self.synced_seq, entries[-1].seq if entries else 0)
            self._size = os.fstat(self._fd).st_size

    def _write(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def _end_torn_line(self) -> None:
        """A crash mid-write left half a line: close it with a newline (verify reports it)."""
        with open(self.path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":
                    os.write(self._fd, b"\n")

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

    def write(self, entries: list[AuditEntry], cp: Checkpoint | None) -> None:
        with self._lock:
            for e in entries:
                self._emit(e.mirror_line())
            if cp is not None:
                self._emit(checkpoint_line(cp))
            if entries:
                self.synced_seq = entries[-1].seq

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
