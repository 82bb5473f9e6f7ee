"""The append-only, hash-chained audit log.

Each entry's hash covers every other field, including the previous entry's hash, so
changing, removing, reordering or inserting an entry breaks the chain at that seq.
Every commit batch carries an Ed25519-signed checkpoint, so rows added or re-hashed by
someone without the node key are caught; the witness keeps every checkpoint outside the
database, so a truncated or rolled-back database is caught; an optional mirror keeps a
copy outside the database that verify compares entry by entry. Threat model: docs/audit.md.

- ``entry``: one entry and the hash format
- ``events``: the catalogue of event types, with the words the auditor reads
- ``wording``: an entry in those words
- ``log``: the writer (appending, group commit, checkpoints, feeding the mirror)
- ``verifier``: the verifier (chain, checkpoints and mirror in one pass)
- ``storage``: what the log needs of its store
- ``checkpoints``: signed checkpoints and the keys a verifier trusts
- ``witness``: every checkpoint, also in a file outside the database
- ``mirror``: the copy outside the database (a file or syslog)
"""

from emergency.audit.entry import GENESIS_HASH, OUTCOMES, AuditEntry, canonical_details, iso_ms
from emergency.audit.events import AuditEvent
from emergency.audit.log import AuditLog
from emergency.audit.verifier import VerifyResult
from emergency.audit.wording import Names, describe
from emergency.store import AuditLogStore

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "AuditLogStore",
    "Names",
    "VerifyResult",
    "canonical_details",
    "describe",
    "iso_ms",
]
