"""The registry the gateway talks to: camera streams by id, one hub each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .errors import StreamUnavailable
from .factory import make_source, validate_url
from .hub import Hub, SourceFactory
from .snapshot import Snapshot, Snapshotter
from .source import Source, SourceSink
from .track import PacketTrack

STREAMS = ("main", "sub")

# (camera_id, stream, url, sink) -> Source: lets the embedding application decide per
# stream where the video comes from (e.g. a relay from another node) without this
# package knowing why.
StreamSourceFactory = Callable[[str, str, str, SourceSink], Source]


class MediaHubs:
    """One hub per (camera_id, stream); one ingest per hub however many viewers."""

    def __init__(
        self, *, idle_timeout: float = 10.0, queue_frames: int = 120, source_factory: StreamSourceFactory | None = None
    ) -> None:
        """``source_factory`` replaces :func:`camera_adapters.factory.make_source` (the
        default) for every stream; it is told which camera and stream it serves."""
        self._idle_timeout = idle_timeout
        self._queue_frames = queue_frames
        self._factory: SourceFactory = make_source
        self._stream_factory = source_factory
        self._hubs: dict[tuple[str, str], Hub] = {}
        self._replaced: list[Hub] = []
        self._snapshotters: dict[tuple[str, str], Snapshotter] = {}
        self._pins: set[tuple[str, str]] = set()

    def register(self, camera_id: str, stream: str, url: str) -> None:
        """Add or re-point a stream; re-pointing ends the old hub's viewers."""
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
        validate_url(url)
        key = (camera_id, stream)
        old = self._hubs.get(key)
        if old is not None:
            if old.url == url:
                return
            self._replaced.append(old)
        self._hubs[key] = Hub(
            url, self._factory_for(camera_id, stream), idle_timeout=self._idle_timeout, queue_frames=self._queue_frames
        )
        if old is not None:
            self._close_soon(old)

    def _factory_for(self, camera_id: str, stream: str) -> SourceFactory:
        custom = self._stream_factory
        if custom is None:
            return self._factory

        def make(url: str, sink: SourceSink) -> Source:
            return custom(camera_id, stream, url, sink)

        return make

    def streams(self, camera_id: str) -> list[str]:
        """Registered streams of a camera, main first; empty if the camera is unknown."""
        return [s for s in STREAMS if (camera_id, s) in self._hubs]

    def open_track(self, camera_id: str, stream: str = "main") -> PacketTrack:
        """A new viewer track; starts ingest on demand. Call inside the running loop."""
        return self._hub(camera_id, stream).open_track()

    def stats(self, camera_id: str, stream: str = "main") -> dict[str, Any]:
        return self._hub(camera_id, stream).stats()

    async def profile_level_id(self, camera_id: str, stream: str, *, timeout: float = 3.0) -> str | None:
        """The stream's H.264 profile-level-id, waiting up to ``timeout`` for a cold
        camera's first keyframe (a viewer waits for that keyframe anyway)."""
        hub = self._hub(camera_id, stream)
        deadline = asyncio.get_running_loop().time() + timeout
        while hub.profile_level_id is None and hub.ingesting and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return hub.profile_level_id

    def all_stats(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {key: hub.stats() for key, hub in self._hubs.items()}

    async def snapshot(self, camera_id: str, stream: str = "main", *, timeout: float = 5.0) -> Snapshot:
        """The latest keyframe as JPEG; raises SnapshotUnavailable if none arrives in time."""
        hub = self._hub(camera_id, stream)
        snapshotter = self._snapshotters.setdefault((camera_id, stream), Snapshotter())
        return await snapshotter.get(hub, timeout)

    def preload(self, camera_id: str, stream: str) -> None:
        """Keep ingest running with no viewer, so the first officer starts instantly.

        Used while an emergency covering the camera is active. Idempotent."""
        key = (camera_id, stream)
        if key not in self._pins:
            self._hub(camera_id, stream).pin()
            self._pins.add(key)

    def release(self, camera_id: str, stream: str) -> None:
        key = (camera_id, stream)
        if key in self._pins:
            self._pins.discard(key)
            self._hub(camera_id, stream).unpin()

    def preloaded(self) -> set[tuple[str, str]]:
        return set(self._pins)

    async def close(self) -> None:
        for key in list(self._pins):
            self.release(*key)
        hubs = list(self._hubs.values()) + self._replaced
        self._hubs.clear()
        self._replaced = []
        await asyncio.gather(*(hub.close() for hub in hubs))

    def _hub(self, camera_id: str, stream: str) -> Hub:
        try:
            return self._hubs[(camera_id, stream)]
        except KeyError:
            raise StreamUnavailable(f"no stream {stream!r} for camera {camera_id!r}") from None

    def _close_soon(self, hub: Hub) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(hub.close())
        task.add_done_callback(lambda _t: self._replaced.remove(hub) if hub in self._replaced else None)
