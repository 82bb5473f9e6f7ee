"""Live view sessions and their revocation.

Every WHEP session is registered here with the grant that allowed it, so ending a grant
can find and close its sessions at once. Closing is idempotent and always audited with
what was sent, because "who saw what, for how long" is the question auditors ask.
Opening and closing go through ``emergency.live_views``, which also records the session
as live on this node, so a crash cannot leave its viewing span without an end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiortc import RTCPeerConnection

from camera_adapters import PacketTrack
from emergency.clock import Clock
from emergency.live_views import LiveView, LiveViews
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
    sign_in: str | None = None  # the sign-in that opened it: its end closes the video
    web_session: str | None = None  # the pages' session that opened it, kept awake while it plays
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def live_view(self, node: str) -> LiveView:
        return LiveView(
            session=self.id,
            node=node,
            viewer=self.actor.id,
            role=str(self.actor.role),
            agency=self.actor.agency,
            camera=self.camera_id,
            stream=self.stream,
            grant=self.grant_id,
            source=self.source,
            started=self.started,
            sign_in=self.sign_in,
        )

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
    def __init__(self, live: LiveViews, clock: Clock) -> None:
        self._live = live
        self._clock = clock
        self._sessions: dict[str, ViewSession] = {}

    def add(self, session: ViewSession, *, reason: str | None = None) -> None:
        """Registers the session and audits ``view.started`` (``reason``: why it was allowed)."""
        self._live.started(session.live_view(self._live.node), actor=session.actor, reason=reason)
        self._sessions[session.id] = session

    def get(self, session_id: str) -> ViewSession | None:
        return self._sessions.get(session_id)

    def all(self) -> list[ViewSession]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    def web_sessions(self) -> set[str]:
        """The pages' sessions whose video this node serves (each kept awake while it plays)."""
        return {s.web_session for s in self._sessions.values() if s.web_session}

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
        self._live.ended(
            session.live_view(self._live.node),
            actor=actor or session.actor,
            reason=reason,
            ended=self._clock.now(),
            extra={"frames_sent": session.track.frames_sent, "bytes_sent": session.track.bytes_sent},
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
