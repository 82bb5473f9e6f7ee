"""Repository interfaces the service and audit log depend on (implemented by SqlStore: SQLite or PostgreSQL)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from emergency.model import Emergency, Grant

if TYPE_CHECKING:
    from emergency.audit import AuditEntry


class Transactional(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing, serialised with other writers; nests."""
        ...


class EmergencyRepo(Transactional, Protocol):
    def insert_emergency(self, e: Emergency) -> None:
        """Raises Conflict if the building already has an open emergency."""
        ...

    def update_emergency(self, e: Emergency) -> None: ...
    def get_emergency(self, emergency_id: str) -> Emergency | None: ...
    def list_emergencies(self, *, open_only: bool = False) -> list[Emergency]: ...


class GrantRepo(Transactional, Protocol):
    def insert_grant(self, g: Grant) -> None: ...
    def update_grant(self, g: Grant) -> None: ...
    def get_grant(self, grant_id: str) -> Grant | None: ...
    def grants_of_emergency(self, emergency_id: str) -> list[Grant]: ...

    def unended_grants(self, *, agency: str | None = None) -> list[Grant]:
        """Grants with no ended_at, which may still be live or due to expire."""
        ...


class AuditStore(Transactional, Protocol):
    def last_audit_entry(self) -> AuditEntry | None: ...
    def insert_audit_entry(self, entry: AuditEntry) -> None: ...
    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]: ...


__all__ = ["AuditStore", "EmergencyRepo", "GrantRepo", "Transactional"]
