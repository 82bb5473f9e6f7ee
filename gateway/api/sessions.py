"""Read-only views of live view sessions.

* ``GET /api/v1/sessions`` -- who is watching which camera right now (administrators;
  a building administrator sees the sessions on their own buildings' cameras).
* ``GET /whep/{camera}/sessions/{id}`` -- the WHEP session resource, for its viewer: the
  RTP-timestamp -> wall-clock mapping of the video it is receiving, so the page can show
  the camera's wall-clock time of the frame on screen and the measured delay.

How the wall clock is known: the gateway passes the camera's H.264 through; each access
unit is sent to every viewer when it arrives, and the sender remembers, as RTCP sender
reports do, the RTP timestamp of the last unit sent and the wall-clock (NTP) time it was
sent. That send time is the *gateway's receive time* of the frame: for the simulated
cameras within a few milliseconds of capture; for a real camera it leaves out the
camera's own encode and network time (tens of milliseconds on a school LAN). The page
maps the RTP timestamp of each frame it presents (``requestVideoFrameCallback`` metadata)
through the earliest-sent sample it has seen, so catch-up frames from the GOP cache never
make old video look newer than it is. ``server_time_ms`` lets the page correct for a
device clock that is off.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends

from camera_adapters.aiortc_patch import sent_sample
from emergency.permissions import Permission, may
from gateway.api.deps import ActorDep, GatewayDep
from gateway.errors import ApiError
from gateway.identity.guards import requires
from gateway.media.sessions import ViewSession

router = APIRouter(tags=["sessions"])

NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
VIDEO_CLOCK = 90000


def _sent_sample(session: ViewSession) -> tuple[int, float] | None:
    """(RTP timestamp, Unix ms) of the last unit sent to this viewer, or None before the first."""
    for sender in session.pc.getSenders():
        rtp, ntp = sent_sample(sender)
        if ntp:
            return rtp, ((ntp >> 32) - NTP_DELTA + (ntp & 0xFFFFFFFF) / 4294967296) * 1000
    return None


@router.get("/api/v1/sessions", dependencies=[Depends(requires(Permission.LIST_VIEW_SESSIONS))])
def list_sessions(gw: GatewayDep, who: ActorDep) -> list[dict[str, Any]]:
    """Live view sessions: viewer, agency, camera and since when. Administrators only."""
    site = gw.config.site
    out = []
    for s in gw.sessions.all():
        camera = site.cameras.get(s.camera_id)
        if camera is None or not may(who, Permission.LIST_VIEW_SESSIONS, camera.building):
            continue
        agency = site.agencies.get(s.actor.agency or "")
        out.append(
            {
                **s.summary(),
                "viewer_name": gw.tokens.directory.name(s.actor.id),
                "agency_name": agency.name if agency else s.actor.agency,
                "camera_name": camera.name,
                "building": camera.building,
            }
        )
    out.sort(key=lambda v: (v["building"], v["camera_name"], v["started"]))
    return out


@router.get("/whep/{camera_id}/sessions/{session_id}", dependencies=[Depends(requires(Permission.WATCH_LIVE))])
def session_timing(camera_id: str, session_id: str, gw: GatewayDep, who: ActorDep) -> dict[str, Any]:
    session = gw.sessions.get(session_id)
    if session is None or session.camera_id != camera_id or session.actor.id != who.id:
        raise ApiError(404, "not_found", "no such view session (it may have ended)")
    sample = _sent_sample(session)
    return {
        "id": session.id,
        "camera": session.camera_id,
        "stream": session.stream,
        "grant": session.grant_id,
        "started": session.started.isoformat(),
        "clock_rate": VIDEO_CLOCK,
        "rtp_timestamp": sample[0] if sample else None,
        "sent_at_ms": round(sample[1], 1) if sample else None,
        "wallclock_source": "gateway_receive",
        "frames_sent": session.track.frames_sent,
        "server_time_ms": round(time.time() * 1000, 1),
    }
