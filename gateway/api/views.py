"""JSON shapes of domain objects. Camera URLs and credentials never leave the gateway."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from emergency.agreements import NO_AGREEMENT
from emergency.model import Actor, Emergency, Grant
from emergency.permissions import Permission, may
from emergency.service import EmergencyService
from emergency.site import Building, Camera


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def floor_plan_url(building: Building | None) -> str | None:
    """Where a building's floor plan image is served (gateway/api/buildings.py), or None."""
    if building is None or building.floor_plan is None:
        return None
    return f"/api/v1/buildings/{quote(building.id, safe='')}/floor-plan"


def refusal_detail(service: EmergencyService, who: Actor, reason: str) -> str:
    """The detail of a refused view (WHEP, snapshot): the reason's code, except for an officer
    whose agency has no camera agreement, who is told so in plain words and whom to call."""
    if reason == NO_AGREEMENT:
        return service.no_agreement_notice(who) or reason
    return reason


def camera_view(camera: Camera, streams: list[str], building: Building | None = None) -> dict[str, Any]:
    """``building`` (the camera's) adds the URL of its floor plan, on which ``position`` lies."""
    return {
        "id": camera.id,
        "name": camera.name,
        "building": camera.building,
        "zone": camera.zone,
        "tags": list(camera.tags),
        "privacy": str(camera.privacy),
        "position": list(camera.position) if camera.position else None,
        "streams": streams,
        "floor_plan": floor_plan_url(building),
    }


def emergency_view(e: Emergency, viewer: Actor) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": e.id,
        "building": e.building,
        "state": str(e.state),
        "action": str(e.action),
        "incident_type": str(e.incident_type),
        "drill": e.drill,
        "declared_by": e.declared_by,
        "declared_at": _iso(e.declared_at),
        "confirm_deadline": _iso(e.confirm_deadline),
        "activated_at": _iso(e.activated_at),
        "expires_at": _iso(e.expires_at),
        "ended_at": _iso(e.ended_at),
        "end_reason": e.end_reason,
        "threat_basis_missing": not e.threat_basis,
        "trigger": str(e.trigger),
        "activation": str(e.activation),
        "extensions": e.extensions,
        "pending_extension": None
        if e.pending_extension is None
        else {
            "minutes": e.pending_extension.minutes,
            "reason": e.pending_extension.reason,
            "requested_by": e.pending_extension.requested_by,
            "requested_at": _iso(e.pending_extension.requested_at),
        },
    }
    if may(viewer, Permission.SEE_THREAT_BASIS, e.building):
        view["threat_basis"] = e.threat_basis
    return view


def grant_view(g: Grant) -> dict[str, Any]:
    return {
        "id": g.id,
        "emergency": g.emergency_id,
        "agency": g.agency,
        "cameras": sorted(g.camera_ids),
        "starts": _iso(g.starts),
        "expires": _iso(g.expires),
        "ended_at": _iso(g.ended_at),
        "end_reason": g.end_reason,
    }
