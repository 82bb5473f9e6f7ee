"""What an earlier ``verify`` on this node already proved, so the next run need not check
every checkpoint signature again (one Ed25519 verification is ~75 µs; a log signed per
commit batch has many checkpoints).

The file holds the seq of the last checkpoint a successful run checked and a digest of
every checkpoint up to it (fields and signature), with an HMAC under a key derived from
the node's signing key. A later run that finds the same checkpoints up to that seq (same
digest) skips their signature checks; anything changed, added or deleted among them
changes the digest and every signature is checked again. Without the signing key the
file cannot be forged (docs/audit.md: the attackers verify defends against lack the key);
deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path

from emergency.audit.checkpoints import Checkpoint

VERIFIED_FILE = "audit-verified.json"


def digest(cps: Iterable[Checkpoint]) -> str:
    h = hashlib.sha256()
    for cp in cps:
        h.update(cp.message())
        h.update(b"\0" + cp.signature.encode() + b"\n")
    return h.hexdigest()


class VerifiedPrefix:
    def __init__(self, path: Path, mac_key: bytes) -> None:
        self.path = path
        self._key = mac_key

    def _mac(self, seq: int, dig: str) -> str:
        return hmac.new(self._key, f"{seq}:{dig}".encode(), hashlib.sha256).hexdigest()

    def load(self) -> tuple[int, str] | None:
        """(seq, digest) a previous run proved, or None (no file, or not made with our key)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            seq, dig, mac = int(data["seq"]), str(data["digest"]), str(data["mac"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (seq, dig) if hmac.compare_digest(mac, self._mac(seq, dig)) else None

    def save(self, seq: int, dig: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"seq": seq, "digest": dig, "mac": self._mac(seq, dig)}, fh)
        os.replace(tmp, self.path)
