"""Repository interfaces the domain depends on, one per concern (implemented by SqlStore:
SQLite or PostgreSQL; by tests/memory_store.py in the domain tests).

Each service names the few it uses (``ServiceStore``, ``RequestStore``, ``RecordStore``),
so a new storage backend or a test double implements exactly those.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from emergency.model import Emergency, Grant

if TYPE_CHECKING:
    from emergency.audit import AuditEntry
    from emergency.audit.checkpoints import AuditKey, Checkpoint
    from emergency.guest_passes import GuestPass
    from emergency.live_views import LiveView
    from emergency.outbox import Notification
    from emergency.people import Person
    from emergency.records import RecordKind, RecordLink
    from emergency.requests import AccessRequest
    from emergency.sign_ins import SignInRecord


class Transactional(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing, serialised with other writers; nests."""
        ...


class EmergencyReader(Protocol):
    def get_emergency(self, emergency_id: str) -> Emergency | None: ...
    def list_emergencies(self, *, open_only: bool = False) -> list[Emergency]: ...


class EmergencyRepo(EmergencyReader, Transactional, Protocol):
    def insert_emergency(self, e: Emergency) -> None:
        """Raises Conflict if the building already has an open emergency."""
        ...

    def update_emergency(self, e: Emergency) -> None: ...


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

    def audit_entries_of_type(self, event_type: str, *, limit: int = 1) -> list[AuditEntry]:
        """The newest entries of one type, newest first."""
        ...


class CheckpointRepo(Protocol):
    """Signed checkpoints of the audit chain, and the nodes' public keys that signed them."""

    def insert_audit_checkpoint(self, cp: Checkpoint) -> bool:
        """False if a checkpoint at that seq exists already (another node signed it first)."""
        ...

    def last_audit_checkpoint(self) -> Checkpoint | None: ...
    def audit_checkpoints(self, *, after_seq: int = 0, limit: int = 1000) -> list[Checkpoint]: ...

    def insert_audit_key(self, key: AuditKey) -> None:
        """Records a node's public key; a key already recorded is left as it is."""
        ...

    def audit_keys(self) -> list[AuditKey]: ...


class RequestRepo(Protocol):
    """Dispatchers' access requests."""

    def insert_access_request(self, r: AccessRequest) -> None: ...
    def update_access_request(self, r: AccessRequest) -> None: ...
    def get_access_request(self, request_id: str) -> AccessRequest | None: ...
    def list_access_requests(self, *, pending_only: bool = False) -> list[AccessRequest]: ...


class RecordLinkRepo(Protocol):
    """Links to the district's record systems, keyed by (kind, source, external id)."""

    def upsert_record_link(self, link: RecordLink) -> None: ...
    def get_record_link(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None: ...

    def record_links(self, kind: RecordKind | None = None, *, open_only: bool = False) -> list[RecordLink]:
        """``open_only``: restraint episodes without an end (the ones that can hold cameras)."""
        ...


class OutboxRepo(Transactional, Protocol):
    """Notifications waiting for, or done with, delivery."""

    def insert_notification(self, n: Notification) -> None: ...
    def update_notification(self, n: Notification) -> None: ...
    def get_notification(self, notification_id: str) -> Notification | None: ...
    def due_notifications(self, now: datetime, limit: int) -> list[Notification]: ...
    def count_notifications(self, state: str) -> int: ...
    def list_notifications(self, state: str, *, limit: int = 100) -> list[Notification]: ...


class ReceiptRepo(Protocol):
    """Event ids already received from an origin (panic buttons, TOTP steps)."""

    def remember_receipt(self, origin: str, event_id: str, received: datetime) -> bool:
        """False when this (origin, event id) was seen before: a replay."""
        ...


class LiveViewRepo(Transactional, Protocol):
    """The view sessions each node is serving and each node's last heartbeat, so a node
    that crashed can close its sessions at its next start (emergency.live_views)."""

    def insert_live_view(self, view: LiveView) -> None: ...

    def delete_live_view(self, session_id: str) -> bool:
        """False when there was no such row."""
        ...

    def live_views(self, node: str) -> list[LiveView]:
        """The sessions recorded as live on ``node``, oldest first."""
        ...

    def record_heartbeat(self, node: str, at: datetime) -> None: ...
    def last_heartbeat(self, node: str) -> datetime | None: ...


class SignInRepo(Transactional, Protocol):
    """People's sign-ins, which every token and web session names (emergency.sign_ins)."""

    def insert_sign_in(self, record: SignInRecord) -> None: ...
    def update_sign_in(self, record: SignInRecord) -> None: ...
    def get_sign_in(self, sign_in_id: str) -> SignInRecord | None: ...
    def sign_ins_by_id(self, ids: list[str]) -> list[SignInRecord]: ...

    def sign_ins_of(self, account_id: str, *, unended_only: bool = False) -> list[SignInRecord]:
        """One person's sign-ins, oldest first."""
        ...

    def live_sign_ins(self, now: datetime, account_id: str | None = None) -> list[SignInRecord]:
        """Sign-ins neither ended nor expired at ``now``, oldest first; everyone's when no account is named."""
        ...

    def sign_ins_watching(self, ids: list[str]) -> set[str]:
        """Those of ``ids`` with a live view session on any node."""
        ...


class GuestPassRepo(Transactional, Protocol):
    """Mutual-aid guest passes (emergency.guest_passes); the link and PIN only as hashes."""

    def insert_guest_pass(self, p: GuestPass) -> None: ...
    def update_guest_pass(self, p: GuestPass) -> None: ...
    def get_guest_pass(self, pass_id: str) -> GuestPass | None: ...
    def guest_pass_by_link(self, link_hash: str) -> GuestPass | None: ...
    def guest_passes_of_emergency(self, emergency_id: str) -> list[GuestPass]: ...

    def unfinished_guest_passes(self) -> list[GuestPass]:
        """Passes open or redeemed: those the clock or the emergency's end may still finish."""
        ...


class PeopleRepo(Protocol):
    """People provisioned at sign-in (emergency.people), one row per provider subject."""

    def upsert_person(self, person: Person) -> None: ...
    def get_person(self, person_id: str) -> Person | None: ...


class AuditLogStore(AuditStore, CheckpointRepo, Protocol):
    """What AuditLog needs: the chain and its checkpoints. Optional faster paths the writer
    and the verifier use when a store has them: ``audit_in_transaction``,
    ``insert_audit_entries``, ``audit_chain_rows`` and ``audit_chain_page``."""


class ServiceStore(EmergencyRepo, GrantRepo, Protocol):
    """What EmergencyService needs."""


class RequestStore(RequestRepo, EmergencyReader, Protocol):
    """What AccessRequests needs: its requests, and which emergencies are open."""


class RecordStore(RecordLinkRepo, EmergencyReader, Protocol):
    """What RecordsService needs: its links, and which emergencies are open."""


class GuestPassStore(GuestPassRepo, EmergencyReader, Protocol):
    """What GuestPasses needs: its passes, and the emergencies they are bound to."""


__all__ = [
    "AuditLogStore",
    "AuditStore",
    "CheckpointRepo",
    "EmergencyReader",
    "EmergencyRepo",
    "GrantRepo",
    "GuestPassRepo",
    "GuestPassStore",
    "LiveViewRepo",
    "OutboxRepo",
    "ReceiptRepo",
    "RecordLinkRepo",
    "RecordStore",
    "RequestRepo",
    "RequestStore",
    "ServiceStore",
    "SignInRepo",
    "Transactional",
]
