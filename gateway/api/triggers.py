"""Triggers that start an emergency without the panel: a hardware panic button (signed
webhook) and a dispatcher's access request."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from emergency.audit import AuditEvent
from emergency.errors import Conflict
from emergency.model import Action, IncidentType, Trigger
from emergency.permissions import Permission
from emergency.requests import AccessRequest
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.errors import ApiError
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.guards import requires, signed_webhook
from gateway.identity.signing import DEFAULT_TOLERANCE, SIGNATURE_HEADER, verify

router = APIRouter(prefix="/api/v1", tags=["triggers"])

MAX_PANIC_BODY = 8 * 1024


def _refuse(gw, button_id: str, status: int, code: str, detail: str, source: str | None) -> ApiError:
    gw.audit.append(
        AuditEvent.TRIGGER_DENIED,
        actor_id=f"panic:{button_id}",
        object=f"panic_button:{button_id}",
        outcome="denied",
        source=source,
        reason=detail,
    )
    return ApiError(status, code, detail)


def _stale(header: str, now: float) -> bool:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:  # as verify() reads it
            return abs(now - int(value)) > DEFAULT_TOLERANCE
    return False


@signed_webhook
async def signed_press(button_id: str, request: Request, gw: GatewayDep, source: SourceDep) -> bytes:
    """The body of a press that the button's secret signed; every refusal is audited."""
    button = gw.config.panic_buttons.get(button_id)
    if button is None:
        raise _refuse(gw, button_id, 404, "not_found", "no such panic button", source)
    body = await request.body()
    if len(body) > MAX_PANIC_BODY:
        raise _refuse(gw, button_id, 413, "too_large", "the request body is too large", source)
    header = request.headers.get(SIGNATURE_HEADER, "")
    try:
        secret = CredentialBox.for_dir(gw.config.secrets_dir).open(button.sealed_secret)
    except CredentialError:
        raise _refuse(
            gw, button_id, 503, "misconfigured", "the button's secret cannot be opened on this node", source
        ) from None
    now = time.time()
    if not verify(secret, body, header, now):
        reason = "stale signature timestamp" if _stale(header, now) else "bad or missing signature"
        raise _refuse(gw, button_id, 401, "unauthorized", reason, source)
    return body


@router.post("/triggers/panic/{button_id}", status_code=201)
async def panic(
    button_id: str, body: Annotated[bytes, Depends(signed_press)], gw: GatewayDep, source: SourceDep
) -> dict[str, Any]:
    """A panic button press, authenticated by ``X-Sightline-Signature: t=<unix>,v1=<hmac>``
    over ``"<t>." + body``; body ``{"event_id": "...", "drill": false}``. Replays (same
    event id) and signatures older than five minutes are refused and audited."""
    button = gw.config.panic_buttons[button_id]
    try:
        payload = json.loads(body)
        event_id = payload["event_id"]
        drill = payload.get("drill", False)
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 128 or not isinstance(drill, bool):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise _refuse(
            gw,
            button_id,
            422,
            "invalid_request",
            'the body must be {"event_id": "<unique id>", "drill": false}',
            source,
        ) from None
    if not gw.receipts.first_time(f"panic:{button_id}", event_id):
        raise _refuse(gw, button_id, 409, "replay", f"event {event_id!r} was already received", source)
    try:
        emergency = gw.emergencies.declare(
            None,
            building=button.building,
            action=button.action,
            incident_type=button.incident_type,
            drill=drill,
            source=source,
            trigger=Trigger.PANIC,
            origin=f"panic:{button_id}",
        )
    except Conflict:
        open_now = next(e for e in gw.emergencies.list(open_only=True) if e.building == button.building)
        return {"status": "already_open", "emergency": open_now.id}
    return {
        "status": "declared",
        "emergency": emergency.id,
        "state": str(emergency.state),
        "confirm_deadline": emergency.confirm_deadline.isoformat(),
    }


class AccessRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    building: str = Field(min_length=1, max_length=100)
    call_type: str = Field(min_length=1, max_length=64, description="e.g. 911_call_from_school")
    reason: str = Field(min_length=1, max_length=500)
    action: Action = Action.LOCKDOWN
    incident_type: IncidentType = IncidentType.OTHER


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


def request_view(r: AccessRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "building": r.building,
        "requested_by": r.requested_by,
        "agency": r.agency,
        "call_type": r.call_type,
        "reason": r.reason,
        "action": str(r.action),
        "incident_type": str(r.incident_type),
        "created": r.created.isoformat(),
        "state": str(r.state),
        "decided_by": r.decided_by,
        "decided_at": r.decided_at.isoformat() if r.decided_at else None,
        "decision_reason": r.decision_reason,
        "emergency": r.emergency_id,
    }


@router.post("/access-requests", status_code=201, dependencies=[Depends(requires(Permission.REQUEST_ACCESS))])
def submit_request(body: AccessRequestBody, gw: GatewayDep, who: ActorDep, source: SourceDep) -> dict[str, Any]:
    return request_view(
        gw.requests.submit(
            who,
            building=body.building,
            call_type=body.call_type,
            reason=body.reason,
            action=body.action,
            incident_type=body.incident_type,
            source=source,
        )
    )


@router.get("/access-requests", dependencies=[Depends(requires(Permission.LIST_ACCESS_REQUESTS))])
def list_requests(gw: GatewayDep, who: ActorDep, pending_only: bool = False) -> list[dict[str, Any]]:
    return [request_view(r) for r in gw.requests.visible_to(who, pending_only=pending_only)]


@router.post(
    "/access-requests/{request_id}/{decision}", dependencies=[Depends(requires(Permission.DECIDE_ACCESS_REQUESTS))]
)
def decide_request(
    request_id: str,
    decision: Literal["approve", "deny"],
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    body: DenyBody | None = Body(default=None),
) -> dict[str, Any]:
    if decision == "approve":
        return request_view(gw.requests.approve(who, request_id, source=source))
    return request_view(gw.requests.deny(who, request_id, reason=(body or DenyBody()).reason, source=source))
