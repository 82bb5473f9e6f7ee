"""What the audit log needs of its store: the entries (emergency.store.AuditStore) and
the checkpoints with the nodes' public keys (emergency.audit.checkpoints.CheckpointStore)."""

from __future__ import annotations

from typing import Protocol

from emergency.audit.checkpoints import CheckpointStore
from emergency.store import AuditStore


class AuditLogStore(AuditStore, CheckpointStore, Protocol):
    """SqlStore (SQLite or PostgreSQL) provides it. Optional faster paths the writer and
    the verifier use when a store has them: ``audit_in_transaction``,
    ``insert_audit_entries``, ``audit_chain_rows`` and ``audit_chain_page``."""


__all__ = ["AuditLogStore"]
