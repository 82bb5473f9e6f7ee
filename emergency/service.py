"""EmergencyService: the one entry point the gateway calls.

It applies the rules from ``lifecycle`` (states), ``scope`` (what is shared) and
``authority`` (who may), persists the result, writes the audit log in the same
transaction, and tells listeners once the change is committed.

Choices worth knowing:
- Every call first applies the clock (``tick``), so no caller sees a pending emergency
  past its confirm window or a grant past its expiry. The exceptions are the reads of
  stored grants (``stored_grant``, ``grants_of``) that reports make about the past.
- Storage is whatever implements ``emergency.store.ServiceStore``.
- An emergency that activates on its own does so *at its confirm deadline*, even if
  the service was down then; its time-box runs from there. ``tick`` therefore gives
  the same result however often, or late, it runs.
- At the end of the time-box the grants expire but the emergency stays ``active``
  (with nothing shared) until someone gives the all clear: ending an emergency is a
  human decision, sharing video beyond the time-box is not allowed.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from emergency import agreements, authority, lifecycle, scope
from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.errors import Conflict, DomainError, Forbidden, Invalid, InvalidTransition, NotFound
from emergency.events import EmergencyChanged, GrantEnded, GrantRescoped, GrantStarted
from emergency.guest_passes import is_guest_agency
from emergency.ids import new_id
from emergency.lifecycle import Command
from emergency.model import (
    Action,
    Activation,
    Actor,
    Decision,
    Emergency,
    Grant,
    IncidentType,
    PendingExtension,
    Trigger,
)
from emergency.outbox import TOPICS as NOTIFIED
from emergency.outbox import Outbox
from emergency.site import Camera, Site
from emergency.store import ServiceStore

log = logging.getLogger(__name__)

Listener = Callable[[object], None]
Events = list[object]
"""Domain events a command collects, told to listeners once it commits."""
E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

SYSTEM = "system"
MAX_TEXT = 4000


class EmergencyService:
    def __init__(
        self,
        site: Site,
        store: ServiceStore,
        audit: AuditLog,
        clock: Clock,
        listeners: Sequence[Listener] = (),
        outbox: Outbox | None = None,
    ) -> None:
        self._site = site
        self._store = store
        self._audit = audit
        self._clock = clock
        self.outbox = outbox
        self.held_cameras: Callable[[datetime], frozenset[str]] = lambda now: frozenset()
        self._listeners: list[Listener] = list(listeners)
        self.tick()

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    # commands

    def declare(
        self,
        actor: Actor | None,
        *,
        building: str,
        action: Action,
        incident_type: IncidentType,
        threat_basis: str | None = None,
        drill: bool = False,
        source: str | None = None,
        trigger: Trigger = Trigger.PANEL,
        origin: str | None = None,
    ) -> Emergency:
        """``trigger`` PANEL needs an actor who may command the building. Machine triggers
        (a verified panic webhook, an auto-approved request, a records proposal) pass
        ``actor=None`` and name their ``origin`` (e.g. ``panic:office-panel``), which the
        audit log records as the actor; an administrator approving a request passes itself."""
        request = {
            "building": building,
            "action": str(action),
            "incident_type": str(incident_type),
            "drill": drill,
            "trigger": str(trigger),
            "origin": origin,
        }

        def run(now: datetime, events: Events) -> Emergency:
            if building not in self._site.buildings:
                raise Invalid(f"building: {building!r} is not a building of the site")
            if actor is None and (trigger is Trigger.PANEL or not origin):
                raise Forbidden("a declaration without a person needs a machine trigger and its origin")
            if actor is not None and not authority.may_command(actor, building):
                raise Forbidden(f"{actor.role} {actor.id} may not declare an emergency for {building!r}")
            if not isinstance(drill, bool):
                raise Invalid("drill: expected true or false")
            e = lifecycle.declared(
                new_id(),
                building=building,
                action=_member(Action, action, "action"),
                incident_type=_member(IncidentType, incident_type, "incident_type"),
                drill=drill,
                threat_basis=_text(threat_basis, "threat_basis"),
                declared_by=actor.id if actor else str(origin),
                at=now,
                policy=self._site.policy,
                trigger=_member(Trigger, trigger, "trigger"),
            )
            self._store.insert_emergency(e)
            self._record(
                e,
                AuditEvent.EMERGENCY_DECLARED,
                actor,
                source,
                actor_id=origin,
                details={
                    "confirm_deadline": e.confirm_deadline,
                    "activation": e.activation,
                    "trigger": e.trigger,
                    "origin": origin,
                    "as_designee_of": self._designee_basis(actor, building),
                    "threat_basis": e.threat_basis,
                    "threat_basis_missing": e.threat_basis is None,
                },
            )
            events.append(EmergencyChanged(e))
            if e.activation is Activation.IMMEDIATE:
                return self._activate(
                    e,
                    Command.ACTIVATE,
                    now,
                    actor,
                    source,
                    events,
                    reason=f"policy activates {e.trigger} triggers at once",
                    actor_id=origin,
                )
            return e

        return self._command(
            AuditEvent.DECLARE_DENIED, actor, f"building:{building}", source, run, request, actor_id=origin
        )

    def confirm(self, actor: Actor, emergency_id: str, *, source: str | None = None) -> Emergency:
        def run(now: datetime, events: Events) -> Emergency:
            e = self._commandable(actor, emergency_id, Command.CONFIRM)
            self._record(e, AuditEvent.EMERGENCY_CONFIRMED, actor, source)
            return self._activate(e, Command.CONFIRM, now, actor, source, events)

        return self._command(AuditEvent.CONFIRM_DENIED, actor, f"emergency:{emergency_id}", source, run)

    def cancel(
        self, actor: Actor, emergency_id: str, *, reason: str = "false alarm", source: str | None = None
    ) -> Emergency:
        def run(now: datetime, events: Events) -> Emergency:
            text = _text(reason, "reason")
            if text is None:
                raise Invalid("reason: a cancel needs a reason")
            e = self._commandable(actor, emergency_id, Command.CANCEL)
            self._end_grants(e, now, "cancelled", actor, source, events)
            return self._change(
                lifecycle.cancelled(e, now, text), AuditEvent.EMERGENCY_CANCELLED, actor, source, events, reason=text
            )

        return self._command(AuditEvent.CANCEL_DENIED, actor, f"emergency:{emergency_id}", source, run)

    def all_clear(self, actor: Actor, emergency_id: str, *, source: str | None = None) -> Emergency:
        def run(now: datetime, events: Events) -> Emergency:
            e = self._commandable(actor, emergency_id, Command.ALL_CLEAR)
            self._end_grants(e, now, "all_clear", actor, source, events)
            return self._change(lifecycle.all_cleared(e, now), AuditEvent.EMERGENCY_ALL_CLEAR, actor, source, events)

        return self._command(AuditEvent.ALL_CLEAR_DENIED, actor, f"emergency:{emergency_id}", source, run)

    def close(self, actor: Actor, emergency_id: str, *, source: str | None = None) -> Emergency:
        def run(now: datetime, events: Events) -> Emergency:
            e = self._commandable(actor, emergency_id, Command.CLOSE)
            return self._change(lifecycle.closed(e), AuditEvent.EMERGENCY_CLOSED, actor, source, events)

        return self._command(AuditEvent.CLOSE_DENIED, actor, f"emergency:{emergency_id}", source, run)

    def change_action(self, actor: Actor, emergency_id: str, action: Action, *, source: str | None = None) -> Emergency:
        """Escalate or de-escalate. Live grants are re-scoped at once: cameras leaving the
        scope are announced (GrantRescoped) so their sessions close."""

        def run(now: datetime, events: Events) -> Emergency:
            new_action = _member(Action, action, "action")
            e = self._commandable(actor, emergency_id, Command.CHANGE)
            if new_action is e.action:
                return e
            changed = self._change(
                replace(e, action=new_action),
                AuditEvent.EMERGENCY_ACTION_CHANGED,
                actor,
                source,
                events,
                details={"from": e.action, "to": new_action},
            )
            self._sync_grants(changed, now, actor, source, events, reason="action_changed")
            return changed

        return self._command(
            AuditEvent.CHANGE_DENIED, actor, f"emergency:{emergency_id}", source, run, {"action": str(action)}
        )

    def set_threat_basis(self, actor: Actor, emergency_id: str, text: str, *, source: str | None = None) -> Emergency:
        """The articulable and significant threat (34 CFR 99.36(c)); may be filled in after the fact."""

        def run(now: datetime, events: Events) -> Emergency:
            basis = _text(text, "threat_basis")
            if basis is None:
                raise Invalid("threat_basis: describe the threat (it cannot be blank)")
            e = self._existing(emergency_id)
            if not authority.may_command(actor, e.building):
                raise Forbidden(f"{actor.role} {actor.id} may not change emergencies of {e.building!r}")
            return self._change(
                replace(e, threat_basis=basis),
                AuditEvent.EMERGENCY_THREAT_BASIS_SET,
                actor,
                source,
                events,
                details={"threat_basis": basis, "previous": e.threat_basis},
            )

        return self._command(AuditEvent.THREAT_BASIS_DENIED, actor, f"emergency:{emergency_id}", source, run)

    def extend(
        self, actor: Actor, emergency_id: str, *, minutes: int, reason: str, source: str | None = None
    ) -> Emergency:
        """Lengthen the time-box. Within the hard maximum (from activation) one administrator
        with a reason suffices; beyond it the request waits for a second administrator."""

        def run(now: datetime, events: Events) -> Emergency:
            text = _text(reason, "reason")
            if text is None:
                raise Invalid("reason: an extension needs a reason")
            if (
                not isinstance(minutes, int)
                or isinstance(minutes, bool)
                or not 1 <= minutes <= self._site.policy.hard_max_minutes
            ):
                raise Invalid(f"minutes: between 1 and {self._site.policy.hard_max_minutes}")
            e = self._commandable(actor, emergency_id, Command.EXTEND)
            if lifecycle.extension_allowed(e, minutes, self._site.policy):
                return self._apply_extension(e, minutes, text, now, [actor.id], actor, source, events)
            if e.pending_extension is not None:
                raise Conflict("an extension beyond the maximum is already waiting for a second administrator")
            pending = PendingExtension(minutes, text, actor.id, now)
            return self._change(
                replace(e, pending_extension=pending),
                AuditEvent.EMERGENCY_EXTENSION_REQUESTED,
                actor,
                source,
                events,
                reason=text,
                details={"minutes": minutes, "needs_second_approval": True},
            )

        return self._command(
            AuditEvent.EXTEND_DENIED, actor, f"emergency:{emergency_id}", source, run, {"minutes": minutes}
        )

    def decide_extension(
        self, actor: Actor, emergency_id: str, *, approve: bool, reason: str | None = None, source: str | None = None
    ) -> Emergency:
        """The second administrator's decision on an extension beyond the hard maximum."""

        def run(now: datetime, events: Events) -> Emergency:
            e = self._commandable(actor, emergency_id, Command.EXTEND)
            pending = e.pending_extension
            if pending is None:
                raise InvalidTransition("no extension is waiting for approval")
            if actor.id == pending.requested_by:
                raise Forbidden("the second approval must come from a different administrator")
            if approve:
                return self._apply_extension(
                    e, pending.minutes, pending.reason, now, [pending.requested_by, actor.id], actor, source, events
                )
            return self._change(
                replace(e, pending_extension=None),
                AuditEvent.EMERGENCY_EXTENSION_DENIED,
                actor,
                source,
                events,
                reason=_text(reason, "reason") or "denied",
                details={"minutes": pending.minutes, "requested_by": pending.requested_by},
            )

        denied = AuditEvent.APPROVE_EXTENSION_DENIED if approve else AuditEvent.DENY_EXTENSION_DENIED
        return self._command(denied, actor, f"emergency:{emergency_id}", source, run)

    def tick(self) -> None:
        """Apply the clock: activate pending emergencies whose window ran out, expire grants."""
        events: Events = []
        with self._store.transaction():
            now = self._clock.now()
            for e in self._store.list_emergencies(open_only=True):
                if lifecycle.due_for_activation(e, now):
                    self._activate(
                        e,
                        Command.ACTIVATE,
                        e.confirm_deadline,
                        None,
                        None,
                        events,
                        reason="confirm window elapsed without cancel",
                    )
            for g in self._store.unended_grants():
                if g.expires <= now:
                    self._end_grant(g, g.expires, "expired", None, None, events)
        self._emit(events)

    # queries

    def get(self, emergency_id: str) -> Emergency:
        self.tick()
        return self._existing(emergency_id)

    def list(self, *, open_only: bool = False) -> builtins.list[Emergency]:
        self.tick()
        return self._store.list_emergencies(open_only=open_only)

    def grants_for(self, actor: Actor) -> builtins.list[Grant]:
        """The actor's live grants as they may use them now: cameras under a privacy hold left out."""
        if actor.agency is None:
            return []
        held = self.held_cameras(self._clock.now())
        return [replace(g, camera_ids=g.camera_ids - held) for g in self.live_grants(agency=actor.agency)]

    def live_grants(self, *, agency: str | None = None) -> builtins.list[Grant]:
        """Grants live now, of one agency or of all."""
        self.tick()
        now = self._clock.now()
        return [g for g in self._store.unended_grants(agency=agency) if g.live_at(now)]

    def grant_live(self, grant_id: str) -> bool:
        self.tick()
        grant = self._store.get_grant(grant_id)
        return grant is not None and grant.live_at(self._clock.now())

    # records of the past: as stored, without applying the clock (reports read many of them)

    def stored_grant(self, grant_id: str) -> Grant | None:
        """A grant as recorded, live or ended (why it ended, which emergency it served)."""
        return self._store.get_grant(grant_id)

    def grants_of(self, emergency_id: str) -> builtins.list[Grant]:
        """Every grant an emergency made, live or ended, oldest first."""
        return self._store.grants_of_emergency(emergency_id)

    def decide_view(self, actor: Actor, camera_id: str, *, source: str | None = None) -> Decision:
        """Refusals are audited here; the gateway audits the session it opens on an allowed decision."""
        self.tick()
        camera = self._site.cameras.get(camera_id)
        if camera is None:
            self._audit.append(
                AuditEvent.VIEW_DENIED,
                actor=actor,
                object=f"camera:{camera_id}",
                outcome="denied",
                source=source,
                reason="not_found",
            )
            raise NotFound(f"camera {camera_id!r} does not exist")
        decision = self._decide(actor, camera)
        if not decision.allowed:
            self._audit.append(
                AuditEvent.VIEW_DENIED,
                actor=actor,
                object=f"camera:{camera_id}",
                outcome="denied",
                source=source,
                reason=decision.reason,
                details={"building": camera.building, "privacy": camera.privacy},
            )
        return decision

    def visible_cameras(self, actor: Actor) -> builtins.list[Camera]:
        """Metadata for admins in scope and auditors; for officers exactly what they may watch now."""
        self.tick()
        return [
            c
            for c in self._site.cameras.values()
            if authority.may_see_metadata(actor, c) or self._decide(actor, c).allowed
        ]

    def no_agreement_notice(self, actor: Actor) -> str | None:
        """For an officer whose agency has no camera agreement: why they see no camera and
        whom to call, in plain words (emergency/agreements.py); None for everyone else."""
        if not agreements.lacks_agreement(self._site, actor):
            return None
        self.tick()
        emergencies = self._store.list_emergencies(open_only=True)
        return agreements.no_agreement_notice(self._site, actor, emergencies, self._clock.now())

    def may_see_floor_plan(self, actor: Actor, building: str) -> bool:
        """The rule for a building's floor plan (authority.may_see_floor_plan) as of now."""
        return authority.may_see_floor_plan(actor, building, self.visible_cameras(actor))

    # internals

    def _decide(self, actor: Actor, camera: Camera) -> Decision:
        grants = self._store.unended_grants(agency=actor.agency) if actor.agency else []
        now = self._clock.now()
        decision = authority.decide_view(actor, camera, grants, now, self.held_cameras(now))
        if decision.reason == "no_live_grant" and agreements.lacks_agreement(self._site, actor):
            return Decision(False, agreements.NO_AGREEMENT)  # the real reason, for the audit and the officer
        return decision

    def _command(
        self,
        denied: AuditEvent,
        actor: Actor | None,
        obj: str,
        source: str | None,
        run: Callable[[datetime, Events], T],
        details: dict[str, Any] | None = None,
        actor_id: str | None = None,
    ) -> T:
        """Run one command in one transaction; audit any refusal as ``denied``; then notify."""
        self.tick()
        events: Events = []
        try:
            with self._store.transaction():
                result = run(self._clock.now(), events)
        except DomainError as err:
            self._audit.append(
                denied,
                actor=actor,
                actor_id=None if actor else (actor_id or SYSTEM),
                object=obj,
                outcome="denied",
                source=source,
                reason=f"{err.code}: {err}",
                details=details or self._drill_of(obj),
            )
            raise
        self._emit(events)
        return result

    def _drill_of(self, obj: str) -> dict[str, Any]:
        kind, _, ident = obj.partition(":")
        e = self._store.get_emergency(ident) if kind == "emergency" else None
        return {"drill": e.drill} if e else {}

    def _existing(self, emergency_id: str) -> Emergency:
        e = self._store.get_emergency(emergency_id)
        if e is None:
            raise NotFound(f"emergency {emergency_id!r} does not exist")
        return e

    def _commandable(self, actor: Actor, emergency_id: str, command: Command) -> Emergency:
        e = self._existing(emergency_id)
        if not authority.may_command(actor, e.building):
            raise Forbidden(f"{actor.role} {actor.id} may not {command} emergencies of {e.building!r}")
        lifecycle.next_state(e, command)
        return e

    def _activate(
        self,
        e: Emergency,
        command: Command,
        at: datetime,
        actor: Actor | None,
        source: str | None,
        events: Events,
        reason: str | None = None,
        actor_id: str | None = None,
    ) -> Emergency:
        active = self._change(
            lifecycle.activated(e, command, at, self._site.policy),
            AuditEvent.EMERGENCY_ACTIVATED,
            actor,
            source,
            events,
            reason=reason,
            actor_id=actor_id,
        )
        self._sync_grants(active, at, actor, source, events, reason="activated")
        return active

    def _apply_extension(
        self,
        e: Emergency,
        minutes: int,
        reason: str,
        now: datetime,
        approvers: builtins.list[str],
        actor: Actor,
        source: str | None,
        events: Events,
    ) -> Emergency:
        longer = lifecycle.extended(e, minutes)
        self._change(
            longer,
            AuditEvent.EMERGENCY_EXTENDED,
            actor,
            source,
            events,
            reason=reason,
            details={
                "minutes": minutes,
                "expires_at": longer.expires_at,
                "approved_by": approvers,
                "beyond_hard_max": len(approvers) > 1,
            },
        )
        self._sync_grants(longer, now, actor, source, events, reason="extended")
        return longer

    def _sync_grants(
        self, e: Emergency, at: datetime, actor: Actor | None, source: str | None, events: Events, *, reason: str
    ) -> None:
        """Make the emergency's unended grants match what it shares now: one per agreement
        agency, the action's cameras, until the time-box ends. Activation, a change of
        action and an extension all come through here, so the rule lives in one place."""
        planned = scope.planned_grants(self._site, e, new_id, starts=at)
        wanted = {g.agency: g for g in planned}
        current = {g.agency: g for g in self._store.grants_of_emergency(e.id) if g.ended_at is None}
        for agency, grant in current.items():
            target = wanted.pop(agency, None)
            if is_guest_agency(agency):
                # a mutual-aid guest sees what the agreement agencies see, never more; while
                # the action shares nothing, nothing (the grant waits for the next action)
                target = planned[0] if planned else replace(grant, camera_ids=frozenset())
            if target is None:
                self._end_grant(grant, at, reason, actor, source, events)
                continue
            removed, added = grant.camera_ids - target.camera_ids, target.camera_ids - grant.camera_ids
            if not removed and not added and grant.expires == target.expires:
                continue
            updated = replace(grant, camera_ids=target.camera_ids, expires=target.expires)
            self._store.update_grant(updated)
            self._record(
                e,
                AuditEvent.GRANT_RESCOPED if removed or added else AuditEvent.GRANT_EXTENDED,
                actor,
                source,
                obj=f"grant:{grant.id}",
                reason=reason,
                details={"agency": agency, "removed": removed, "added": added, "expires": updated.expires},
            )
            if removed or added:
                events.append(GrantRescoped(updated, frozenset(removed), frozenset(added)))
        for grant in wanted.values():
            self._store.insert_grant(grant)
            self._record(
                e,
                AuditEvent.GRANT_STARTED,
                actor,
                source,
                obj=f"grant:{grant.id}",
                reason=reason,
                details={
                    "agency": grant.agency,
                    "cameras": grant.camera_ids,
                    "starts": grant.starts,
                    "expires": grant.expires,
                },
            )
            events.append(GrantStarted(grant))

    # mutual-aid guests (emergency.guest_passes), inside the guest pass's own transaction

    def open_guest_grant(
        self, emergency_id: str, agency: str, at: datetime, actor_id: str, source: str | None, events: Events
    ) -> Grant:
        """A grant for a guest's own agency: the cameras the emergency's live grants share
        now, until they expire (``_sync_grants`` then keeps it in step; ``_end_grants`` ends it)."""
        e = self._existing(emergency_id)
        if not e.sharing_at(at) or e.expires_at is None:
            raise InvalidTransition("the emergency shares no video now")
        live = [g for g in self._store.grants_of_emergency(e.id) if g.live_at(at) and not is_guest_agency(g.agency)]
        cameras = frozenset().union(*(g.camera_ids for g in live))
        grant = Grant(new_id(), e.id, agency, cameras, at, max((g.expires for g in live), default=e.expires_at))
        self._store.insert_grant(grant)
        self._record(
            e,
            AuditEvent.GRANT_STARTED,
            None,
            source,
            actor_id=actor_id,
            obj=f"grant:{grant.id}",
            reason="guest pass used",
            details={"agency": agency, "cameras": cameras, "starts": at, "expires": grant.expires},
        )
        events.append(GrantStarted(grant))
        return grant

    def end_guest_grant(
        self, emergency_id: str, agency: str, reason: str, actor: Actor | None, source: str | None, events: Events
    ) -> None:
        for grant in self._store.grants_of_emergency(emergency_id):
            if grant.agency == agency and grant.ended_at is None:
                self._end_grant(grant, min(self._clock.now(), grant.expires), reason, actor, source, events)

    def tell(self, events: Events) -> None:
        """Tell listeners about events a caller collected in its own, now committed, transaction."""
        self._emit(events)

    def _designee_basis(self, actor: Actor | None, building: str) -> str | None:
        """The account whose rights a designee used, or None when acting on its own."""
        if actor is None:
            return None
        basis = authority.command_basis(actor, building)
        return basis if basis not in (None, actor.id) else None

    def _end_grants(
        self, e: Emergency, at: datetime, reason: str, actor: Actor | None, source: str | None, events: Events
    ) -> None:
        for grant in self._store.grants_of_emergency(e.id):
            if grant.ended_at is None:
                self._end_grant(grant, min(at, grant.expires), reason, actor, source, events)

    def _end_grant(
        self, grant: Grant, at: datetime, reason: str, actor: Actor | None, source: str | None, events: Events
    ) -> None:
        ended = replace(grant, ended_at=at, end_reason=reason)
        self._store.update_grant(ended)
        e = self._existing(grant.emergency_id)
        self._record(
            e,
            AuditEvent.GRANT_ENDED,
            actor,
            source,
            obj=f"grant:{grant.id}",
            reason=reason,
            details={"agency": grant.agency, "ended_at": at},
        )
        events.append(GrantEnded(ended, reason))

    def _change(
        self,
        e: Emergency,
        event_type: AuditEvent,
        actor: Actor | None,
        source: str | None,
        events: Events,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        actor_id: str | None = None,
    ) -> Emergency:
        self._store.update_emergency(e)
        self._record(
            e,
            event_type,
            actor,
            source,
            reason=reason,
            actor_id=actor_id,
            details={"state": e.state, "as_designee_of": self._designee_basis(actor, e.building), **(details or {})},
        )
        if self.outbox is not None and event_type in NOTIFIED:
            # Same transaction as the change: a notification is never lost nor sent for a rolled-back change.
            self.outbox.enqueue(event_type, {"emergency": _notice(e), "reason": reason, **(details or {})})
        events.append(EmergencyChanged(e))
        return e

    def _record(
        self,
        e: Emergency,
        event_type: AuditEvent,
        actor: Actor | None,
        source: str | None,
        *,
        obj: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Every record about an emergency names it, its building and action, and whether it is a drill."""
        self._audit.append(
            event_type,
            actor=actor,
            actor_id=None if actor else (actor_id or SYSTEM),
            object=obj or f"emergency:{e.id}",
            source=source,
            reason=reason,
            details={
                "emergency": e.id,
                "building": e.building,
                "action": e.action,
                "incident_type": e.incident_type,
                "drill": e.drill,
                **(details or {}),
            },
        )

    def _emit(self, events: Events) -> None:
        """Listeners run after commit; one that fails is logged and audited, never undoes the change."""
        for event in events:
            for fn in list(self._listeners):
                try:
                    fn(event)
                except Exception as exc:
                    log.exception("listener %r failed on %s", fn, type(event).__name__)
                    self._audit.append(
                        AuditEvent.LISTENER_FAILED,
                        actor_id=SYSTEM,
                        outcome="failure",
                        reason=f"{type(exc).__name__}: {exc}",
                        details={"event": type(event).__name__},
                    )


def _notice(e: Emergency) -> dict[str, Any]:
    """What notified parties (dispatch, attorney, communications) learn: no threat text,
    which may name a student, only whether it is recorded."""
    return {
        "id": e.id,
        "building": e.building,
        "state": e.state,
        "action": e.action,
        "drill": e.drill,
        "incident_type": e.incident_type,
        "trigger": e.trigger,
        "declared_at": e.declared_at,
        "activated_at": e.activated_at,
        "expires_at": e.expires_at,
        "ended_at": e.ended_at,
        "threat_basis_recorded": e.threat_basis is not None,
        # who or what declared it: an account, or a trigger's origin such as "threat:tat/case-7",
        # so a records system can match the emergency its record proposed
        "declared_by": e.declared_by,
        "disclosure": {"id": e.id, "url": f"/api/v1/emergencies/{e.id}/disclosure"},
    }


def _member(enum: type[E], value: str, field: str) -> E:
    try:
        return enum(value)
    except ValueError:
        raise Invalid(f"{field}: {value!r} is not one of {', '.join(m.value for m in enum)}") from None


def _text(value: str | None, field: str) -> str | None:
    """Optional free text: blank means missing; over-long is refused rather than cut."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{field}: expected text")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise Invalid(f"{field}: longer than {MAX_TEXT} characters")
    return value or None
