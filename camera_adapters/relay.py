"""A camera stream relayed over HTTP from another process that already ingests it.

Used when several gateway nodes share a camera that allows only a few RTSP sessions: one
node pulls the camera, the others read its access units from it with :class:`RelaySource`.
This module knows nothing about nodes, leases or authentication: it is given a URL and
the request headers (a callable, so a signature can be fresh on every connect).

Wire format (``application/vnd.sightline.relay``), a plain HTTP/1.1 response body::

    magic    4 bytes   b"SLR1"
    then, repeated, one frame per access unit:
      pts      int64, big-endian   the sender's 90 kHz timestamp (its own timeline)
      flags    uint8               bit 0: keyframe (an IDR with SPS/PPS in front);
                                   bit 1: heartbeat (no unit: pts 0, length 0); others 0
      length   uint32, big-endian  byte count of the data that follows (1 .. MAX_UNIT)
      data     length bytes        one H.264 access unit, Annex-B

The sender starts at its cached GOP's keyframe and then sends live units as long as the
client reads; while it has no unit to send it sends a heartbeat every second, so a
connection whose camera is down is told apart from a dead connection. The receiver marks the first unit of every connection ``new_session`` so
the hub rebases its timeline and viewers' RTP timestamps stay monotonic across
reconnects, exactly as for an RTSP reconnect.

States, watchdog and backoff are those of :class:`camera_adapters.rtsp.RtspSource`:
``connecting`` → ``live`` → (``backoff`` → ``reconnecting`` → ``live``)...; a connection
that delivers nothing (not even a heartbeat) for ``WATCHDOG_SECONDS`` is dropped and
retried; one that delivers only heartbeats for that long reports ``backoff`` ("no video
from the sender") until video resumes, without reconnecting.
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from .backoff import RepeatedFailures, backoff_delay
from .errors import SourceError
from .rtsp import WATCHDOG_SECONDS
from .source import Source, SourceSink
from .units import AccessUnit
from .urls import redact

log = logging.getLogger(__name__)

MAGIC = b"SLR1"
MEDIA_TYPE = "application/vnd.sightline.relay"
MAX_UNIT = 16 * 1024 * 1024
CONNECT_TIMEOUT = 3.0
_HEADER = struct.Struct(">qBI")
FLAG_KEYFRAME = 1
FLAG_HEARTBEAT = 2
HEARTBEAT = _HEADER.pack(0, FLAG_HEARTBEAT, 0)


def encode_unit(pts: int, keyframe: bool, data: bytes) -> bytes:
    """One frame of the wire format (without the leading magic)."""
    return _HEADER.pack(int(pts), FLAG_KEYFRAME if keyframe else 0, len(data)) + data


def decode_units(read: Callable[[int], bytes]) -> Iterator[AccessUnit | None]:
    """Access units (None for a heartbeat) from a byte reader (``read(n)`` returns up to n
    bytes, b"" at EOF). Raises SourceError on a malformed stream, stops at a clean end."""

    def exactly(n: int, *, eof_ok: bool = False) -> bytes | None:
        chunks, got = [], 0
        while got < n:
            chunk = read(n - got)
            if not chunk:
                if eof_ok and got == 0:
                    return None
                raise SourceError("relay stream ended mid-frame")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    if exactly(len(MAGIC)) != MAGIC:
        raise SourceError("not a relay stream (bad magic)")
    while True:
        header = exactly(_HEADER.size, eof_ok=True)
        if header is None:
            return
        pts, flags, length = _HEADER.unpack(header)
        if flags == FLAG_HEARTBEAT and length == 0:
            yield None
            continue
        if not 0 < length <= MAX_UNIT or flags & ~FLAG_KEYFRAME:
            raise SourceError("malformed relay frame")
        data = exactly(length)
        assert data is not None
        yield AccessUnit(data, pts, bool(flags & FLAG_KEYFRAME))


class RelaySource(Source):
    """Reads access units from a relay URL and reconnects with the RTSP backoff.

    ``headers()`` is called before every connect. ``keep_going()`` (optional) is asked
    before every connect and once a second while backing off; when it returns False the
    source ends (``ended`` is set) instead of retrying -- its owner then decides what to
    do (e.g. take over the camera itself). ``peer`` names the sender in ``ingest``; a
    response header ``X-Relay-Peer`` replaces it.
    """

    def __init__(
        self,
        url: str,
        sink: SourceSink,
        *,
        headers: Callable[[], dict[str, str]] | None = None,
        keep_going: Callable[[], bool] | None = None,
        peer: str | None = None,
    ) -> None:
        super().__init__(url, sink)
        self._headers = headers or dict
        self._keep_going = keep_going
        self.peer = peer or redact(url)
        self.ended = False
        self.units = 0
        self._conn: http.client.HTTPConnection | None = None

    @property
    def ingest(self) -> str:
        return f"relay:{self.peer}"

    def stop(self) -> None:
        super().stop()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:  # unblock a read waiting for the next frame
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _should_continue(self) -> bool:
        if self._keep_going is None:
            return True
        try:
            return bool(self._keep_going())
        except Exception as exc:  # the check itself failing must not kill the relay
            log.warning("relay %s: keep_going check failed: %s", redact(self.url), exc)
            return True

    def run(self) -> None:
        failures = 0
        failed = RepeatedFailures()
        state = "connecting"
        while not self.stopping:
            if not self._should_continue():
                self.ended = True
                return
            self.sink.on_state(state)
            delivered = False
            last_video = time.monotonic()
            silent = False
            try:
                for unit in self._session():
                    if unit is None:  # heartbeat: the sender is there but has no video
                        if not silent and time.monotonic() - last_video > WATCHDOG_SECONDS:
                            silent = True
                            self.sink.on_state("backoff", "no video from the sender")
                        continue
                    last_video = time.monotonic()
                    if not delivered or silent:
                        delivered, silent = True, False
                        failures = 0
                        failed.reset()
                        self.sink.on_state("live")
                    self.units += 1
                    self.sink.on_unit(unit)
                    if self.stopping:
                        return
                raise SourceError("relay ended")
            except (OSError, http.client.HTTPException, SourceError) as exc:
                if self.stopping:
                    return
                if failed.worth_logging(str(exc)):
                    log.warning("relay %s: %s%s", redact(self.url), exc, failed.suffix())
            state = "reconnecting"
            delay = backoff_delay(failures, needed=self.needed)
            failures += 1
            self.sink.on_state("backoff", f"retry in {delay:g}s")
            if not self.wait_to_retry(delay, self._should_continue):
                self.ended = not self.stopping
                return

    def _session(self) -> Iterator[AccessUnit | None]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"relay URL must be http(s): {redact(self.url)}")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
        self._conn = conn
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"Accept": MEDIA_TYPE, **self._headers()})
            if conn.sock is not None:
                conn.sock.settimeout(WATCHDOG_SECONDS)  # the watchdog: no frame for this long
            response = conn.getresponse()
            if response.status != 200:
                body = response.read(512).decode("utf-8", "replace")
                raise SourceError(f"relay answered {response.status}: {body}")
            self.peer = response.getheader("X-Relay-Peer") or self.peer
            first = True
            for unit in decode_units(response.read1 if hasattr(response, "read1") else response.read):
                if self.stopping:
                    return
                if unit is not None and first:
                    unit = AccessUnit(unit.data, unit.pts, unit.keyframe, new_session=True)
                    first = False
                yield unit
        except TimeoutError:
            raise SourceError(f"no video from relay for {WATCHDOG_SECONDS:g}s") from None
        finally:
            self._conn = None
            conn.close()
