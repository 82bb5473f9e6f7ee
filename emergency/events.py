"""What the domain tells the outside world, after the change is committed.

The gateway closes every WebRTC session on a grant when it sees ``GrantEnded``.
"""

from __future__ import annotations

from dataclasses import dataclass

from emergency.model import Emergency, Grant


@dataclass(frozen=True)
class GrantStarted:
    grant: Grant


@dataclass(frozen=True)
class GrantEnded:
    grant: Grant
    reason: str


@dataclass(frozen=True)
class EmergencyChanged:
    emergency: Emergency


@dataclass(frozen=True)
class GrantRescoped:
    """A live grant's camera set changed with the action; sessions on ``removed`` cameras must end."""

    grant: Grant
    removed: frozenset[str]
    added: frozenset[str]
