"""One camera stream's fan-out point: one ingest, a GOP cache and many viewer tracks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .annexb import profile_level_id
from .sendpath import SharedUnit
from .source import Source, SourceSink
from .timeline import PtsTimeline
from .track import PacketTrack
from .units import AccessUnit
from .urls import redact

log = logging.getLogger(__name__)

SourceFactory = Callable[[str, SourceSink], Source]
FPS_WINDOW = 2.0
JOIN_TIMEOUT = 6.0
GOP_CACHE_MAX = 600


class _LoopSink:
    """Hands a source thread's output to the hub on its event loop, tagged by generation."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop, generation: int) -> None:
        self._hub = hub
        self._loop = loop
        self._generation = generation

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, self._generation, *args)
        except RuntimeError:
            pass

    def on_unit(self, unit: AccessUnit) -> None:
        self._post(self._hub._on_unit, unit)

    def on_state(self, state: str, detail: str = "") -> None:
        self._post(self._hub._on_state, state, detail)


class Hub:
    """Starts ingest with the first viewer and stops it ``idle_timeout`` after the last."""

    def __init__(self, url: str, source_factory: SourceFactory, *, idle_timeout: float, queue_frames: int) -> None:
        self.url = url
        self._factory = source_factory
        self._idle_timeout = idle_timeout
        self._queue_frames = queue_frames
        self._loop: asyncio.AbstractEventLoop | None = None
        self._source: Source | None = None
        self._retired: list[Source] = []
        self._generation = 0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._tracks: set[PacketTrack] = set()
        self._gop: list[SharedUnit] = []
        self._timeline = PtsTimeline()
        self._session_start = True
        self._arrivals: deque[tuple[float, int]] = deque()
        self._keyframe_at: tuple[float, float] | None = None  # (monotonic, wall clock)
        self._pins = 0
        self.profile_level_id: str | None = None
        self.state = "idle"
        self.detail = ""
        self.keyframes = 0
        self.reconnects = 0
        self.packets = 0
        self._past_drops = 0

    @property
    def ingesting(self) -> bool:
        return self._source is not None

    def open_track(self) -> PacketTrack:
        self._ensure_ingest()
        track = PacketTrack(self, self._queue_frames)
        for unit in self._gop:
            track.offer(unit)
        self._tracks.add(track)
        self._tell_needed()
        return track

    def pin(self) -> None:
        """Keep ingesting with no viewer (a camera an active emergency covers)."""
        self._pins += 1
        self._ensure_ingest()
        self._tell_needed()

    def unpin(self) -> None:
        self._pins = max(0, self._pins - 1)
        self._tell_needed()
        self._maybe_idle()

    def latest_keyframe(self) -> tuple[SharedUnit, float] | None:
        """The cached keyframe and the wall-clock time it arrived, if ingest has one."""
        if self._gop and self._keyframe_at is not None:
            return self._gop[0], self._keyframe_at[1]
        return None

    def _ensure_ingest(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._stop_ingest()
            self._loop = loop
        self._cancel_idle()
        if self._source is None:
            self._start_ingest(loop)

    def _tell_needed(self) -> None:
        """The source reconnects quickly only while someone needs it (backoff.py)."""
        if self._source is not None:
            self._source.set_needed(bool(self._tracks or self._pins))

    def _maybe_idle(self) -> None:
        if not self._tracks and not self._pins and self._source is not None and self._loop is not None:
            self._cancel_idle()
            self._idle_handle = self._loop.call_later(self._idle_timeout, self._idle_expired)

    def detach(self, track: PacketTrack) -> None:
        if track not in self._tracks:
            return
        self._tracks.discard(track)
        self._past_drops += track.drops
        self._tell_needed()
        self._maybe_idle()

    def stats(self) -> dict[str, Any]:
        """state is idle, connecting, live, backoff, reconnecting, failed or closed; ingest is
        where the video comes from ("camera", or "relay:<peer>" when another process pulls
        the camera and relays it; None while idle)."""
        return {
            "state": self.state,
            "detail": self.detail,
            "fps": round(self._fps(), 2),
            "bitrate_kbps": round(self._bitrate_kbps(), 1),
            "keyframe_age_s": round(time.monotonic() - self._keyframe_at[0], 2) if self._keyframe_at else None,
            "profile_level_id": self.profile_level_id,
            "transcoding": self._source.transcoding if self._source else None,
            "ingest": self._source.ingest if self._source else None,
            "preloaded": self._pins > 0,
            "viewers": len(self._tracks),
            "keyframes": self.keyframes,
            "reconnects": self.reconnects,
            "drops": self._past_drops + sum(t.drops for t in self._tracks),
            "packets": self.packets,
        }

    async def close(self) -> None:
        """End every track and stop ingest, waiting briefly for source threads to exit."""
        for track in list(self._tracks):
            self._past_drops += track.drops
            track.close()
        self._tracks.clear()
        self._stop_ingest()
        self.state = "closed"
        retired, self._retired = self._retired, []
        for source in retired:
            await asyncio.to_thread(source.join, JOIN_TIMEOUT)

    def _start_ingest(self, loop: asyncio.AbstractEventLoop) -> None:
        self._generation += 1
        self._retired = [s for s in self._retired if not s.join(0)]
        self._source = self._factory(self.url, _LoopSink(self, loop, self._generation))
        self._tell_needed()
        self._session_start = True
        self.state = "connecting"
        self.detail = ""
        log.info("ingest start %s", redact(self.url))
        self._source.start()

    def _stop_ingest(self) -> None:
        self._cancel_idle()
        if self._source is None:
            return
        log.info("ingest stop %s", redact(self.url))
        self._source.stop()
        self._retired.append(self._source)
        self._source = None
        self._generation += 1
        self._gop = []
        self._keyframe_at = None
        self._arrivals.clear()
        self.state = "idle"

    def _cancel_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _idle_expired(self) -> None:
        self._idle_handle = None
        if not self._tracks and not self._pins:
            self._stop_ingest()

    def _on_state(self, generation: int, state: str, detail: str) -> None:
        if generation != self._generation:
            return
        if state == "reconnecting":
            self.reconnects += 1
        self.state, self.detail = state, detail

    def _on_unit(self, generation: int, unit: AccessUnit) -> None:
        if generation != self._generation:
            return
        if unit.new_session:
            self._session_start = True
        if self._session_start and not unit.keyframe:
            return
        new_session, self._session_start = self._session_start, False
        now = time.monotonic()
        pts = self._timeline.map(unit.pts, new_session, now)
        shared = SharedUnit(AccessUnit(unit.data, pts, unit.keyframe))
        self.packets += 1
        self._arrivals.append((now, len(unit.data)))
        while self._arrivals and now - self._arrivals[0][0] > FPS_WINDOW:
            self._arrivals.popleft()
        if unit.keyframe:
            self.keyframes += 1
            self._keyframe_at = (now, time.time())
            self.profile_level_id = profile_level_id(unit.data) or self.profile_level_id
            self._gop = [shared]
        elif self._gop:
            self._gop.append(shared)
            if len(self._gop) > GOP_CACHE_MAX:
                self._gop = []
        for track in self._tracks:
            track.offer(shared)

    def _fps(self) -> float:
        if len(self._arrivals) < 2 or time.monotonic() - self._arrivals[-1][0] > FPS_WINDOW:
            return 0.0
        return (len(self._arrivals) - 1) / max(1e-6, self._arrivals[-1][0] - self._arrivals[0][0])

    def _bitrate_kbps(self) -> float:
        if len(self._arrivals) < 2 or time.monotonic() - self._arrivals[-1][0] > FPS_WINDOW:
            return 0.0
        span = max(1e-6, self._arrivals[-1][0] - self._arrivals[0][0])
        return sum(size for _, size in list(self._arrivals)[1:]) * 8 / span / 1000
