"""A dispatcher's request for camera access, and the administrator's answer.

Districts' agreements often tie police access to "a 911 call from the school": a
dispatcher asks for access to a building; an administrator approves or denies in one
tap, or the policy approves named call types by itself. An approval declares the
emergency through :class:`EmergencyService` with the DISPATCHER trigger, so the request
gets every rule and record that a panel declaration gets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from emergency import authority
from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.errors import Conflict, DomainError, Forbidden, Invalid, InvalidTransition, NotFound
from emergency.ids import new_id
from emergency.model import Action, Actor, Emergency, IncidentType, Trigger
from emergency.permissions import Permission, may
from emergency.site import Site

if TYPE_CHECKING:
    from emergency.service import EmergencyService
    from emergency.store import RequestStore

MAX_REASON = 500


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


@dataclass(frozen=True)
class AccessRequest:
    id: str
    building: str
    requested_by: str
    agency: str | None
    call_type: str
    reason: str
    action: Action
    incident_type: IncidentType
    created: datetime
    state: RequestState = RequestState.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    emergency_id: str | None = None


class AccessRequests:
    def __init__(
        self, site: Site, store: RequestStore, audit: AuditLog, clock: Clock, emergencies: EmergencyService
    ) -> None:
        self._site = site
        self._store = store
        self._audit = audit
        self._clock = clock
        self._emergencies = emergencies

    def submit(
        self,
        actor: Actor,
        *,
        building: str,
        call_type: str,
        reason: str,
        action: Action = Action.LOCKDOWN,
        incident_type: IncidentType = IncidentType.OTHER,
        source: str | None = None,
    ) -> AccessRequest:
        """Auto-approved at once when the policy names ``call_type``; otherwise waits for an administrator."""
        try:
            if not may(actor, Permission.REQUEST_ACCESS):
                raise Forbidden(f"only dispatchers request access; you are {actor.role}")
            if building not in self._site.buildings:
                raise Invalid(f"building: {building!r} is not a building of the site")
            call_type, reason = _text(call_type, "call_type", 64), _text(reason, "reason", MAX_REASON)
            open_now = next((e for e in self._store.list_emergencies(open_only=True) if e.building == building), None)
            if open_now is not None:
                # approving it could only fail: one emergency per building at a time
                raise Conflict(
                    f"{self._site.buildings[building].name} already has an emergency open "
                    f"({open_now.action}, {open_now.state}); call the school to change it"
                )
            request = AccessRequest(
                new_id(),
                building,
                actor.id,
                actor.agency,
                call_type,
                reason,
                Action(action),
                IncidentType(incident_type),
                self._clock.now(),
            )
        except (DomainError, ValueError) as err:
            self._audit.append(
                AuditEvent.ACCESS_REQUEST_DENIED,
                actor=actor,
                object=f"building:{building}",
                outcome="denied",
                source=source,
                reason=str(err),
            )
            raise err if isinstance(err, DomainError) else Invalid(str(err)) from None
        self._store.insert_access_request(request)
        self._audit.append(
            AuditEvent.ACCESS_REQUEST_SUBMITTED,
            actor=actor,
            object=f"access_request:{request.id}",
            source=source,
            reason=reason,
            details={"building": building, "call_type": call_type, "action": request.action},
        )
        if call_type in self._site.policy.auto_approve_calls:
            return self._approve(request, None, f"policy approves '{call_type}' calls", source)
        return request

    def approve(self, actor: Actor, request_id: str, *, source: str | None = None) -> AccessRequest:
        request = self._decidable(actor, request_id, AuditEvent.ACCESS_REQUEST_APPROVE_DENIED, source)
        return self._approve(request, actor, None, source)

    def deny(
        self, actor: Actor, request_id: str, *, reason: str | None = None, source: str | None = None
    ) -> AccessRequest:
        request = self._decidable(actor, request_id, AuditEvent.ACCESS_REQUEST_DENY_DENIED, source)
        denied = replace(
            request,
            state=RequestState.DENIED,
            decided_by=actor.id,
            decided_at=self._clock.now(),
            decision_reason=(reason or "denied").strip()[:MAX_REASON],
        )
        self._store.update_access_request(denied)
        self._audit.append(
            AuditEvent.ACCESS_REQUEST_DENIED_BY_ADMIN,
            actor=actor,
            object=f"access_request:{request.id}",
            outcome="success",
            source=source,
            reason=denied.decision_reason,
            details={"building": request.building, "requested_by": request.requested_by},
        )
        return denied

    def get(self, request_id: str) -> AccessRequest:
        request = self._store.get_access_request(request_id)
        if request is None:
            raise NotFound(f"access request {request_id!r} does not exist")
        return request

    def visible_to(self, actor: Actor, *, pending_only: bool = False) -> list[AccessRequest]:
        """Administrators see the requests for buildings they command; dispatchers their own."""
        requests = self._store.list_access_requests(pending_only=pending_only)
        if may(actor, Permission.REQUEST_ACCESS):
            return [r for r in requests if r.requested_by == actor.id]
        return [r for r in requests if authority.may_command(actor, r.building)]

    def _decidable(self, actor: Actor, request_id: str, denied: AuditEvent, source: str | None) -> AccessRequest:
        try:
            request = self.get(request_id)
            if not authority.may_command(actor, request.building):
                raise Forbidden(f"{actor.role} {actor.id} may not decide requests for {request.building!r}")
            if request.state is not RequestState.PENDING:
                raise InvalidTransition(f"the request was already {request.state}")
        except DomainError as err:
            self._audit.append(
                denied,
                actor=actor,
                object=f"access_request:{request_id}",
                outcome="denied",
                source=source,
                reason=f"{err.code}: {err}",
            )
            raise
        return request

    def _approve(
        self, request: AccessRequest, actor: Actor | None, auto_reason: str | None, source: str | None
    ) -> AccessRequest:
        emergency: Emergency = self._emergencies.declare(
            actor,
            building=request.building,
            action=request.action,
            incident_type=request.incident_type,
            threat_basis=None,
            source=source,
            trigger=Trigger.DISPATCHER,
            origin=None if actor else f"access_request:{request.id}",
        )
        approved = replace(
            request,
            state=RequestState.APPROVED,
            decided_by=actor.id if actor else "policy",
            decided_at=self._clock.now(),
            decision_reason=auto_reason,
            emergency_id=emergency.id,
        )
        self._store.update_access_request(approved)
        self._audit.append(
            AuditEvent.ACCESS_REQUEST_APPROVED,
            actor=actor,
            actor_id=None if actor else "policy",
            object=f"access_request:{request.id}",
            source=source,
            reason=auto_reason,
            details={
                "building": request.building,
                "emergency": emergency.id,
                "requested_by": request.requested_by,
                "call_type": request.call_type,
            },
        )
        return approved


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field}: required")
    if len(value) > limit:
        raise Invalid(f"{field}: longer than {limit} characters")
    return value.strip()
