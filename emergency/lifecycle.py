"""The emergency state machine: which command moves which state where.

pending → active → all_clear → closed; pending|active → cancelled. Nothing else.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from emergency.errors import InvalidTransition
from emergency.model import Action, Activation, Emergency, IncidentType, State, Trigger
from emergency.policy import Policy


class Command(StrEnum):
    CONFIRM = "confirm"
    ACTIVATE = "activate"  # the confirm window ran out without a cancel
    CANCEL = "cancel"
    ALL_CLEAR = "all_clear"
    CLOSE = "close"
    CHANGE = "change"  # action or threat text
    EXTEND = "extend"


TRANSITIONS: dict[Command, dict[State, State]] = {
    Command.CONFIRM: {State.PENDING: State.ACTIVE},
    Command.ACTIVATE: {State.PENDING: State.ACTIVE},
    Command.CANCEL: {State.PENDING: State.CANCELLED, State.ACTIVE: State.CANCELLED},
    Command.ALL_CLEAR: {State.ACTIVE: State.ALL_CLEAR},
    Command.CLOSE: {State.ALL_CLEAR: State.CLOSED},
    Command.CHANGE: {State.PENDING: State.PENDING, State.ACTIVE: State.ACTIVE},
    Command.EXTEND: {State.ACTIVE: State.ACTIVE},
}


def next_state(e: Emergency, command: Command) -> State:
    target = TRANSITIONS[command].get(e.state)
    if target is None:
        raise InvalidTransition(f"cannot {command} emergency {e.id}: it is {e.state}")
    return target


def declared(
    id: str,
    *,
    building: str,
    action: Action,
    incident_type: IncidentType,
    drill: bool,
    threat_basis: str | None,
    declared_by: str,
    at: datetime,
    policy: Policy,
    trigger: Trigger,
) -> Emergency:
    return Emergency(
        id=id,
        building=building,
        state=State.PENDING,
        action=action,
        incident_type=incident_type,
        drill=drill,
        threat_basis=threat_basis,
        declared_by=declared_by,
        declared_at=at,
        confirm_deadline=at + policy.confirm_window,
        trigger=trigger,
        activation=policy.activation_for(trigger),
    )


def extension_allowed(e: Emergency, minutes: int, policy: Policy) -> bool:
    """Whether an extension stays within the hard maximum measured from activation."""
    if e.activated_at is None or e.expires_at is None:
        return False
    return e.expires_at + timedelta(minutes=minutes) - e.activated_at <= policy.hard_max


def extended(e: Emergency, minutes: int) -> Emergency:
    assert e.expires_at is not None
    return replace(
        e, expires_at=e.expires_at + timedelta(minutes=minutes), pending_extension=None, extensions=e.extensions + 1
    )


def activated(e: Emergency, command: Command, at: datetime, policy: Policy) -> Emergency:
    """The time-box starts at activation, not at the button press."""
    return replace(e, state=next_state(e, command), activated_at=at, expires_at=at + policy.timebox)


def cancelled(e: Emergency, at: datetime, reason: str) -> Emergency:
    return replace(e, state=next_state(e, Command.CANCEL), ended_at=at, end_reason=reason)


def all_cleared(e: Emergency, at: datetime) -> Emergency:
    return replace(e, state=next_state(e, Command.ALL_CLEAR), ended_at=at, end_reason="all_clear")


def closed(e: Emergency) -> Emergency:
    return replace(e, state=next_state(e, Command.CLOSE))


def due_for_activation(e: Emergency, now: datetime) -> bool:
    return e.state is State.PENDING and e.activation is Activation.WINDOW and now >= e.confirm_deadline
