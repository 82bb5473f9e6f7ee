"""A viewer whose link cannot carry the main stream moves to the sub stream, and back up
when it can, by itself.

The gateway never re-encodes, so the only knob is which of the camera's streams a viewer
gets. The measure is the viewer's own RTCP receiver reports (packets lost against packets
sent, each second): loss above :data:`DOWN_LOSS` for :data:`SUSTAINED` seconds in a row
moves it to the sub stream (one bad second, such as the end of a blackout, does not).
After :data:`QUIET` seconds below :data:`UP_LOSS` it is moved back up as a probe; a probe
that brings the loss back within :data:`PROBE_SECONDS` doubles the wait (up to
:data:`QUIET_MAX`). Each move is audited (``view.stream_changed``) and the session's
``stream`` follows it. Only viewers that asked for the main stream are moved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from aiortc import RTCRtpSender

from camera_adapters import MediaHubs
from emergency.audit import AuditEvent
from emergency.audit.log import AuditLog
from gateway.media.sessions import ViewSession

log = logging.getLogger(__name__)

ENABLED = True  # False: every viewer stays on the stream it asked for (before issue 13)
TICK = 1.0
DOWN_LOSS = 0.10
UP_LOSS = 0.02
SUSTAINED = 3
QUIET = 8.0
QUIET_MAX = 60.0
PROBE_SECONDS = 5.0
MIN_PACKETS = 20  # a second with fewer packets reported says nothing


@dataclass
class LinkMeter:
    """Loss per second from cumulative receiver-report counters."""

    last: tuple[int, int] | None = None  # (lost, received) at the previous report
    history: deque[float] = field(default_factory=lambda: deque(maxlen=SUSTAINED))

    def add(self, lost: int, received: int) -> float | None:
        """This second's loss fraction, or None if too few packets were reported."""
        prev, self.last = self.last, (lost, received)
        if prev is None:
            return None
        d_lost, d_received = max(0, lost - prev[0]), max(0, received - prev[1])
        if d_lost + d_received < MIN_PACKETS:
            return None
        loss = d_lost / (d_lost + d_received)
        self.history.append(loss)
        return loss

    def sustained_above(self, level: float) -> bool:
        return len(self.history) == SUSTAINED and all(x > level for x in self.history)

    def quiet_below(self, level: float) -> bool:
        return bool(self.history) and all(x < level for x in self.history)

    def reset(self) -> None:
        self.history.clear()


async def receiver_counters(sender: RTCRtpSender) -> tuple[int, int] | None:
    """(packets lost, packets received) from the viewer's latest receiver report."""
    report = await sender.getStats()
    for stats in report.values():
        if getattr(stats, "type", "") == "remote-inbound-rtp":
            return int(stats.packetsLost), int(stats.packetsReceived)
    return None


class StreamAdapter:
    """Watches one view session's link and moves it between main and sub."""

    def __init__(self, session: ViewSession, media: MediaHubs, audit: AuditLog) -> None:
        self._session = session
        self._media = media
        self._audit = audit
        self._meter = LinkMeter()
        self._quiet = QUIET
        self._moved_at = 0.0
        self._probing = False
        self.moves = 0

    def _sender(self) -> RTCRtpSender | None:
        for transceiver in self._session.pc.getTransceivers():
            if transceiver.sender.track is self._session.track:
                return transceiver.sender
        return None

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:  # a bug here must not end the video, only the adapting
            log.exception("adapting view %s failed", self._session.id)

    async def _run(self) -> None:
        session = self._session
        if session.stream != "main" or "sub" not in self._media.streams(session.camera_id):
            return
        while not session.closed.is_set():
            try:
                await asyncio.wait_for(session.closed.wait(), TICK)
                return
            except TimeoutError:
                pass
            sender = self._sender()
            counters = await receiver_counters(sender) if sender is not None else None
            loss = self._meter.add(*counters) if counters is not None else None
            log.debug("view %s: receiver counters %s, loss %s", session.id, counters, loss)
            if loss is None or not ENABLED:
                continue
            await self._decide()

    async def _decide(self) -> None:
        session, meter, now = self._session, self._meter, time.monotonic()
        if session.stream == "main" and meter.sustained_above(DOWN_LOSS):
            if self._probing and now - self._moved_at < PROBE_SECONDS:
                self._quiet = min(QUIET_MAX, self._quiet * 2)
            else:
                self._quiet = QUIET
            await self._move("sub", f"{meter.history[-1]:.0%} of packets lost for {SUSTAINED} s")
        elif session.stream == "main" and self._probing and now - self._moved_at >= PROBE_SECONDS:
            self._probing = False
        elif session.stream == "sub" and now - self._moved_at >= self._quiet and meter.quiet_below(UP_LOSS):
            self._probing = True
            await self._move("main", f"under {UP_LOSS:.0%} loss for {self._quiet:.0f} s")

    async def _move(self, stream: str, why: str) -> None:
        session, media = self._session, self._media
        camera = session.camera_id
        held = not media.has_keyframe(camera, stream)
        if held:  # warm the stream so the viewer does not wait for its ingest to start
            media.hold(camera, stream)
        try:
            for _ in range(30):
                if media.has_keyframe(camera, stream) or session.closed.is_set():
                    break
                await asyncio.sleep(0.1)
            if session.closed.is_set():
                return
            # down: the link is already overfull, so no GOP burst; wait for the next keyframe
            media.move_track(session.track, camera, stream, burst=stream == "main")
        finally:
            if held:
                media.unhold(camera, stream)
        previous, session.stream = session.stream, stream
        self._moved_at = time.monotonic()
        self._meter.reset()
        self.moves += 1
        log.info("view %s moved from %s to %s: %s", session.id, previous, stream, why)
        self._audit.append(
            AuditEvent.VIEW_STREAM_CHANGED,
            actor=session.actor,
            object=f"camera:{camera}",
            source=session.source,
            reason=why,
            details={
                "session": session.id,
                "viewer": session.actor.id,
                "camera": camera,
                "stream": stream,
                "from": previous,
                "why": why,
            },
        )


_running: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly


def adapt(session: ViewSession, media: MediaHubs, audit: AuditLog) -> asyncio.Task[None]:
    """Start adapting ``session``'s stream; the task ends with the session."""
    task = asyncio.create_task(StreamAdapter(session, media, audit).run(), name=f"adapt-{session.id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
