"""One audit log entry and the hash format (v1, unchanged since the first release).

Each entry's hash is the sha256 of its fields except ``hash`` as JSON with sorted keys,
compact separators and ASCII escapes; the fields include the previous entry's hash, so
changing, removing, reordering or inserting an entry breaks the chain at that seq.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

GENESIS_HASH = "0" * 64
OUTCOMES = frozenset({"success", "denied", "failure"})


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    node: str
    event_type: str
    actor_id: str | None
    actor_role: str | None
    actor_agency: str | None
    object: str
    outcome: str
    source: str | None
    reason: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def canonical(self) -> str:
        """The text the hash covers: every field but ``hash``, sorted keys, compact, ASCII."""
        fields = asdict(self)
        del fields["hash"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def mirror_line(self) -> str:
        """The entry as one JSON line for the mirror: its hash, then the hashed fields."""
        return mirror_line(self.hash, self.canonical())


def mirror_line(hash: str, canonical: str) -> str:
    """A mirror line from an entry's hash and canonical text (the verifier compares these)."""
    return '{"hash":"' + hash + '",' + canonical[1:]


def iso_ms(t: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix (CJIS/NIST AU-8 time stamps)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"audit details cannot hold {type(value).__name__}")


# Prebuilt encoders: json.dumps with keyword arguments builds a new encoder on every call.
_DETAILS_ENCODER = json.JSONEncoder(sort_keys=True, default=_plain)
CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # the hash format (v1)


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details exactly as they will read back from storage, so the hash survives the round trip."""
    plain: dict[str, Any] = json.loads(_DETAILS_ENCODER.encode(details)) if details else {}
    return plain
