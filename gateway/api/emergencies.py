"""Declaring and ending emergencies, and the grants they produce."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from emergency.model import Action, IncidentType
from emergency.permissions import Permission
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.views import emergency_view, grant_view
from gateway.errors import ApiError
from gateway.identity.guards import requires

router = APIRouter(prefix="/api/v1", tags=["emergencies"])

EmergencyId = str


class DeclareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    building: str = Field(min_length=1, max_length=100)
    action: Action
    incident_type: IncidentType = IncidentType.OTHER
    threat_basis: str | None = Field(default=None, max_length=4000)
    drill: bool = False


class ChangeRequest(BaseModel):
    """Escalate or de-escalate, and/or fill in the threat text; at least one field."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = None
    threat_basis: str | None = Field(default=None, min_length=1, max_length=4000)


class ExtendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(ge=1, le=24 * 60)
    reason: str = Field(min_length=1, max_length=500)


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="false alarm", min_length=1, max_length=500)


@router.post("/emergencies", status_code=201, dependencies=[Depends(requires(Permission.DECLARE_EMERGENCY))])
def declare(body: DeclareRequest, gw: GatewayDep, who: ActorDep, source: SourceDep) -> dict[str, Any]:
    emergency = gw.emergencies.declare(
        who,
        building=body.building,
        action=body.action,
        incident_type=body.incident_type,
        threat_basis=body.threat_basis,
        drill=body.drill,
        source=source,
    )
    return emergency_view(emergency, who)


@router.get("/emergencies", dependencies=[Depends(requires(Permission.LIST_EMERGENCIES))])
def list_emergencies(gw: GatewayDep, who: ActorDep, open_only: bool = False) -> list[dict[str, Any]]:
    return [emergency_view(e, who) for e in gw.emergencies.list(open_only=open_only)]


@router.get("/emergencies/{emergency_id}", dependencies=[Depends(requires(Permission.LIST_EMERGENCIES))])
def get_emergency(emergency_id: EmergencyId, gw: GatewayDep, who: ActorDep) -> dict[str, Any]:
    return emergency_view(gw.emergencies.get(emergency_id), who)


@router.patch("/emergencies/{emergency_id}", dependencies=[Depends(requires(Permission.COMMAND_EMERGENCY))])
def change(
    emergency_id: EmergencyId, body: ChangeRequest, gw: GatewayDep, who: ActorDep, source: SourceDep
) -> dict[str, Any]:
    if body.action is None and body.threat_basis is None:
        raise ApiError(422, "invalid_request", "send 'action' and/or 'threat_basis'")
    if body.threat_basis is not None:
        emergency = gw.emergencies.set_threat_basis(who, emergency_id, body.threat_basis, source=source)
    if body.action is not None:
        emergency = gw.emergencies.change_action(who, emergency_id, body.action, source=source)
    return emergency_view(emergency, who)


@router.post("/emergencies/{emergency_id}/extend", dependencies=[Depends(requires(Permission.COMMAND_EMERGENCY))])
def extend(
    emergency_id: EmergencyId, body: ExtendRequest, gw: GatewayDep, who: ActorDep, source: SourceDep
) -> dict[str, Any]:
    """Within the hard maximum this applies at once; beyond it, the response shows
    ``pending_extension`` until a second administrator approves."""
    return emergency_view(
        gw.emergencies.extend(who, emergency_id, minutes=body.minutes, reason=body.reason, source=source), who
    )


@router.post(
    "/emergencies/{emergency_id}/extension/{decision}", dependencies=[Depends(requires(Permission.COMMAND_EMERGENCY))]
)
def decide_extension(
    emergency_id: EmergencyId,
    decision: Literal["approve", "deny"],
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    body: DecisionRequest | None = Body(default=None),
) -> dict[str, Any]:
    return emergency_view(
        gw.emergencies.decide_extension(
            who, emergency_id, approve=decision == "approve", reason=(body or DecisionRequest()).reason, source=source
        ),
        who,
    )


@router.get("/policy", dependencies=[Depends(requires(Permission.READ_POLICY))])
def policy(gw: GatewayDep, who: ActorDep) -> dict[str, Any]:
    """The district policy in force, with its version: what each action shares, for how long."""
    p = gw.config.site.policy
    return {
        "version": p.version,
        "default_timebox_minutes": p.default_timebox_minutes,
        "hard_max_minutes": p.hard_max_minutes,
        "confirm_window_seconds": p.confirm_window_seconds,
        "shared_zones": {str(a): sorted(z) for a, z in p.shared_zones.items()},
        "shared_tags": {str(a): sorted(t) for a, t in p.shared_tags.items()},
        "activation": {str(t): str(m) for t, m in p.activation.items()},
        "auto_approve_calls": sorted(p.auto_approve_calls),
        "agencies": [{"id": a.id, "name": a.name} for a in gw.config.site.agencies.values() if a.agreement],
        "extension_rule": "a reason is required; beyond the hard maximum a second administrator must approve",
    }


@router.post("/emergencies/{emergency_id}/{transition}", dependencies=[Depends(requires(Permission.COMMAND_EMERGENCY))])
def transition(
    emergency_id: EmergencyId,
    transition: Literal["confirm", "cancel", "all-clear", "close"],
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    body: CancelRequest | None = Body(default=None),
) -> dict[str, Any]:
    service = gw.emergencies
    if transition == "confirm":
        emergency = service.confirm(who, emergency_id, source=source)
    elif transition == "cancel":
        emergency = service.cancel(who, emergency_id, reason=(body or CancelRequest()).reason, source=source)
    elif transition == "all-clear":
        emergency = service.all_clear(who, emergency_id, source=source)
    else:
        emergency = service.close(who, emergency_id, source=source)
    return emergency_view(emergency, who)


@router.get("/grants/mine", dependencies=[Depends(requires(Permission.LIST_OWN_GRANTS))])
def my_grants(gw: GatewayDep, who: ActorDep) -> list[dict[str, Any]]:
    return [grant_view(g) for g in gw.emergencies.grants_for(who)]


@router.get("/access/mine", dependencies=[Depends(requires(Permission.LIST_OWN_GRANTS))])
def my_access(gw: GatewayDep, who: ActorDep) -> dict[str, Any]:
    """Whether the caller's agency shares cameras with them now and, when not, why in plain
    words: an officer of an agency without a camera agreement is told so and whom to call
    (``[district] camera_contact``) rather than that there is no emergency."""
    grants = gw.emergencies.grants_for(who)
    if grants:
        cameras = len({c for g in grants for c in g.camera_ids})
        return {"access": "granted", "detail": f"{cameras} camera(s) shared with you now.", "contact": None}
    notice = gw.emergencies.no_agreement_notice(who)
    if notice is not None:
        return {"access": "no_agreement", "detail": notice, "contact": gw.config.site.camera_contact}
    return {
        "access": "none",
        "detail": "No emergency gives you access to any camera right now.",
        "contact": None,
    }
