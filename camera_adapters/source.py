"""Base class for camera sources: one blocking thread each, reporting to a sink."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from .backoff import NEEDED_MAX_SECONDS
from .units import AccessUnit
from .urls import redact, scrub

log = logging.getLogger(__name__)


class SourceSink(Protocol):
    """Receives a source's output; implementations must be safe to call from any thread."""

    def on_unit(self, unit: AccessUnit) -> None: ...

    def on_state(self, state: str, detail: str = "") -> None: ...


class Source(ABC):
    """Runs ``run()`` in a daemon thread because PyAV demuxing and encoding block."""

    def __init__(self, url: str, sink: SourceSink) -> None:
        self.url = url
        self.sink = sink
        self.transcoding: str | None = None  # the camera's codec while it is being transcoded
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set by stop() and by becoming needed
        self._needed = False
        self._thread: threading.Thread | None = None

    @property
    def ingest(self) -> str:
        """Where the video comes from, for health: "camera" here; a relay says "relay:<peer>"."""
        return "camera"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"source {redact(self.url)}", daemon=True)
        self._thread.start()

    @property
    def needed(self) -> bool:
        """Whether someone needs the stream now (a viewer or a preload): see backoff.py."""
        return self._needed

    def set_needed(self, needed: bool) -> None:
        """Told by the owner (the hub) whenever that changes; safe from any thread."""
        self._needed = needed
        if needed:
            self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """True once the thread has exited (a blocked network read may hold it a while)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stop was requested."""
        return self._stopping.wait(seconds)

    def wait_to_retry(
        self, seconds: float, keep_waiting: Callable[[], bool] | None = None, check_every: float = 1.0
    ) -> bool:
        """Wait ``seconds`` before reconnecting; True to reconnect now, False to give up
        (stopped, or ``keep_waiting``, asked every ``check_every`` seconds, said no).

        While the stream is needed no wait lasts over ``NEEDED_MAX_SECONDS`` (even one
        chosen just before a viewer came), and a wait that began while nobody needed it ends
        at once when it becomes needed: the viewer who just arrived wants video now."""
        began_needed = self._needed
        began = time.monotonic()
        deadline = began + seconds
        while not self.stopping:
            self._wake.clear()
            if self._needed and not began_needed:
                return True
            end = min(deadline, began + NEEDED_MAX_SECONDS) if self._needed else deadline
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self._wake.wait(min(left, check_every) if keep_waiting else left):
                continue
            if keep_waiting is not None and not self.stopping and not keep_waiting():
                return False
        return False

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:
            detail = scrub(f"{type(exc).__name__}: {exc}", self.url)
            log.error("source %s failed: %s", redact(self.url), detail)
            self.sink.on_state("failed", detail)
        else:
            self.sink.on_state("stopped")

    @abstractmethod
    def run(self) -> None:
        """Produce access units until ``stopping``."""
