"""The domain's values: emergencies, grants and the people acting on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emergency.site import Account, Role


class State(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ALL_CLEAR = "all_clear"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Open emergencies block a second one for the same building."""
        return self in (State.PENDING, State.ACTIVE)


class Action(StrEnum):
    """The Standard Response Protocol actions."""

    HOLD = "HOLD"
    SECURE = "SECURE"
    LOCKDOWN = "LOCKDOWN"
    EVACUATE = "EVACUATE"
    SHELTER = "SHELTER"


class Trigger(StrEnum):
    """What started an emergency; the policy decides how each one activates."""

    PANEL = "panel"  # an administrator's button
    PANIC = "panic"  # a hardware panic button (signed webhook)
    DISPATCHER = "dispatcher"  # a dispatcher's access request, approved by an administrator or by policy
    RECORDS = "records"  # a records-system proposal (threat assessment, firearm report)


class Activation(StrEnum):
    WINDOW = "window"  # pending, activates by itself when the confirm window ends unless cancelled
    CONFIRM = "confirm"  # pending until an administrator confirms
    IMMEDIATE = "immediate"  # active at once


class IncidentType(StrEnum):
    ARMED_INTRUDER = "armed_intruder"
    BOMB_THREAT = "bomb_threat"
    FIRE = "fire"
    SEVERE_WEATHER = "severe_weather"
    HAZMAT = "hazmat"
    MEDICAL = "medical"
    OTHER = "other"


@dataclass(frozen=True)
class Delegation:
    """The rights of another account this actor may use as its designee ("or designee"),
    e.g. an assistant principal standing in for the principal, or a substitute when the
    normal authority is the subject of the matter."""

    account_id: str
    role: Role
    buildings: tuple[str, ...]

    def covers(self, building: str) -> bool:
        return not self.buildings or building in self.buildings


@dataclass(frozen=True)
class Actor:
    """Someone authenticated, as the gateway vouches for them."""

    id: str
    role: Role
    agency: str | None
    buildings: tuple[str, ...]
    mfa: bool
    stands_in_for: tuple[Delegation, ...] = ()

    @classmethod
    def from_account(cls, account: Account, *, mfa: bool, delegations: tuple[Delegation, ...] = ()) -> Actor:
        return cls(account.id, account.role, account.agency, account.buildings, mfa, delegations)

    def covers(self, building: str) -> bool:
        """An empty building list means every building."""
        return not self.buildings or building in self.buildings


@dataclass(frozen=True)
class Emergency:
    id: str
    building: str
    state: State
    action: Action
    incident_type: IncidentType
    drill: bool
    threat_basis: str | None
    declared_by: str
    declared_at: datetime
    confirm_deadline: datetime
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    trigger: Trigger = Trigger.PANEL
    activation: Activation = Activation.WINDOW
    pending_extension: PendingExtension | None = None
    extensions: int = 0

    def sharing_at(self, t: datetime) -> bool:
        """Whether video may flow at ``t``: active and inside its time-box."""
        return (
            self.state is State.ACTIVE
            and self.activated_at is not None
            and self.expires_at is not None
            and self.activated_at <= t < self.expires_at
        )


@dataclass(frozen=True)
class PendingExtension:
    """An extension past the hard maximum, waiting for a second administrator."""

    minutes: int
    reason: str
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True)
class Grant:
    """One agency's access to a fixed camera set for one emergency's time-box."""

    id: str
    emergency_id: str
    agency: str
    camera_ids: frozenset[str]
    starts: datetime
    expires: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None

    def live_at(self, t: datetime) -> bool:
        return self.starts <= t < self.expires and (self.ended_at is None or t < self.ended_at)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant: Grant | None = None
