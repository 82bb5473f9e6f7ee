"""Base class for camera sources: one blocking thread each, reporting to a sink."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Protocol

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

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float | None = None) -> bool:
        """True once the thread has exited (a blocked network read may hold it a while)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True if stop was requested."""
        return self._stopping.wait(seconds)

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
