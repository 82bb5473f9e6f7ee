"""The per-viewer track aiortc sends from: pre-encoded packets, no per-viewer encoding."""

from __future__ import annotations

import asyncio
from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .sendpath import SharedUnit
from .units import VIDEO_CLOCK, AccessUnit

if TYPE_CHECKING:
    from .fastsend import LeanSender
    from .hub import Hub

TIME_BASE = Fraction(1, VIDEO_CLOCK)


class PacketTrack(MediaStreamTrack):
    """A viewer's bounded queue of H.264 access units (Annex-B, pts on a 90 kHz clock).

    Every viewer of a hub yields the same ``av.Packet`` per access unit, packetised once
    for all of them (see :mod:`camera_adapters.sendpath`; :func:`camera_adapters.aiortc_patch.install`
    puts that packer into aiortc's sender). A viewer that
    falls ``queue_frames`` behind loses its backlog and resumes at the next keyframe:
    live video is worthless late, and a P-frame without its reference is garbage.

    Two ways out: aiortc's sender awaiting :meth:`recv` (the stock path), or -- when
    :mod:`camera_adapters.fastsend` could attach a lean sender -- :meth:`run_lean`, after
    which :meth:`offer` sends each unit synchronously from the hub's fan-out (no task
    wakeup per viewer per frame). A congested lean viewer drops to the next keyframe too.
    """

    kind = "video"

    def __init__(self, hub: Hub, queue_frames: int) -> None:
        super().__init__()
        self._hub = hub
        self._queue: deque[SharedUnit] = deque()
        self._last: SharedUnit | None = None
        self._limit = max(1, queue_frames)
        self._wakeup = asyncio.Event()
        self._dropping = False
        self._closed = False
        self._lean: LeanSender | None = None
        self._lean_error: BaseException | None = None
        self.drops = 0
        self.frames_sent = 0
        self.bytes_sent = 0

    def offer(self, unit: SharedUnit | AccessUnit) -> None:
        """Queue a unit from the hub (event-loop thread only)."""
        if not isinstance(unit, SharedUnit):
            unit = SharedUnit(unit)
        if self._dropping:
            if not unit.keyframe:
                self.drops += 1
                return
            self._dropping = False
        lean = self._lean
        if lean is not None and not self._queue:
            self._send_lean(lean, unit)
            return
        if len(self._queue) >= self._limit:
            self.drops += len(self._queue) + 1
            self._queue.clear()
            self._dropping = True
            return
        self._queue.append(unit)
        self._wakeup.set()

    def _send_lean(self, lean: LeanSender, unit: SharedUnit) -> None:
        packetization = unit.packetization()
        try:
            sent = lean.send_unit(packetization.lean_payloads(), unit.pts, packetization.lean_bytes)
        except Exception as exc:  # ConnectionError: the peer is gone; anything else: a bug
            self._lean = None
            self._lean_error = exc
            self._wakeup.set()
            return
        if sent:
            self.frames_sent += 1
            self.bytes_sent += unit.size
        else:  # congested: like a queue overflow, resume at the next keyframe
            self.drops += 1
            self._dropping = True

    async def run_lean(self, lean: LeanSender) -> None:
        """Send through ``lean`` until the track ends or the peer goes away (raises then)."""
        if self._lean is not None:
            raise RuntimeError("track already has a sender")
        self._lean_error = None
        try:
            while True:
                if self.readyState != "live" or self._closed:
                    raise MediaStreamError
                if self._lean_error is not None:
                    raise self._lean_error
                # units queued before the peer connected (the GOP cache): send them now,
                # then the hub's offers go straight out
                while self._queue and self._lean_error is None:
                    unit = self._queue.popleft()
                    if self._dropping:  # congested while catching up
                        if not unit.keyframe:
                            self.drops += 1
                            continue
                        self._dropping = False
                    self._send_lean(lean, unit)
                if self._lean_error is not None:
                    continue
                self._lean = lean
                self._wakeup.clear()
                await self._wakeup.wait()
        finally:
            self._lean = None

    def close(self) -> None:
        """End the track because its hub went away."""
        self._closed = True
        self._lean = None
        self._wakeup.set()
        super().stop()

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live" or self._closed:
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.readyState != "live":
            raise MediaStreamError
        unit = self._queue.popleft()
        self._last = unit  # keeps the shared packetisation alive until the sender packs it
        self.frames_sent += 1
        self.bytes_sent += unit.size
        return unit.packet()

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self._lean = None  # stop sending now, not when the sender's task notices
            self._queue.clear()
            self._last = None
            self._wakeup.set()
            self._hub.detach(self)
