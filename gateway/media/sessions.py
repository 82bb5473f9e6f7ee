"""Live view sessions and their revocation.

Every WHEP session is registered here with the grant that allowed it, so ending a grant
can find and close its sessions at once. Closing is idempotent and always audited with
what was sent, because "who saw what, for how long" is the question auditors ask.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiortc import RTCPeerConnection

from camera_adapters import PacketTrack
from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.model import Actor

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ViewSession:
    id: str
    actor: Actor
    camera_id: str
    stream: str
    grant_id: str
    source: str | None
    started: datetime
    pc: RTCPeerConnection
    track: PacketTrack
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "viewer": self.actor.id,
            "agency": self.actor.agency,
            "camera": self.camera_id,
            "stream": self.stream,
            "grant": self.grant_id,
            "started": self.started.isoformat(),
        }


class SessionRegistry:
    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self._audit = audit
        self._clock = clock
        self._sessions: dict[str, ViewSession] = {}

    def add(self, session: ViewSession) -> None:
        self._sessions[session.id] = session

    def get(self, session_id: str) -> ViewSession | None:
        return self._sessions.get(session_id)

    def all(self) -> list[ViewSession]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    async def close(self, session_id: str, reason: str, *, actor: Actor | None = None) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.track.stop()
        try:
            await session.pc.close()
        except Exception:  # a peer that is already gone must not keep the session listed
            log.exception("closing peer of session %s", session_id)
        session.closed.set()
        ended = self._clock.now()
        self._audit.append(
            AuditEvent.VIEW_ENDED,
            actor=actor or session.actor,
            object=f"camera:{session.camera_id}",
            source=session.source,
            reason=reason,
            details={
                "session": session.id,
                "viewer": session.actor.id,
                "stream": session.stream,
                "grant": session.grant_id,
                "started": session.started.isoformat(),
                "ended": ended.isoformat(),
                "seconds": round((ended - session.started).total_seconds(), 3),
                "frames_sent": session.track.frames_sent,
                "bytes_sent": session.track.bytes_sent,
            },
        )
        return True

    async def close_where(self, reason: str, predicate: Callable[[ViewSession], bool]) -> int:
        ids = [s.id for s in self._sessions.values() if predicate(s)]
        results = await asyncio.gather(*(self.close(i, reason) for i in ids))
        return sum(results)

    async def close_grant(self, grant_id: str, reason: str) -> int:
        return await self.close_where(reason, lambda s: s.grant_id == grant_id)

    async def close_all(self, reason: str) -> int:
        return await self.close_where(reason, lambda s: True)
