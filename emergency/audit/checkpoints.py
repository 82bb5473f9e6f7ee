"""Ed25519-signed checkpoints of the audit chain.

A checkpoint says "the entry at ``seq`` has hash ``hash``; the log then held ``count``
entries", signed by one node's key. Each node generates its own key into the data
dir's secrets (0600) and records its public key in the store's ``audit_keys`` table so
any verifier can find it; but a key found only in the database is not *trusted* (whoever
can write the database could add one): a verifier trusts its own node's key and the
keys pinned in ``secrets/audit_trusted_keys`` (one ``<key_id> <base64 public key>
[node]`` a line). ``key_id`` is derived from the public key, so a row cannot claim
another key's id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNING_KEY_FILE = "audit-signing.key"
TRUSTED_KEYS_FILE = "audit_trusted_keys"
_MESSAGE_PREFIX = b"sightline-audit-checkpoint/v1\n"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    count: int
    ts: str
    node: str
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature

    def message(self) -> bytes:
        """The signed bytes: a versioned prefix and the fields as canonical JSON."""
        return checkpoint_message(self.seq, self.hash, self.count, self.ts, self.node, self.key_id)


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    node: str
    public_key: str  # base64 of the 32 raw bytes
    created: str


def checkpoint_message(seq: int, hash: str, count: int, ts: str, node: str, key_id: str) -> bytes:
    fields = {"count": count, "hash": hash, "key_id": key_id, "node": node, "seq": seq, "ts": ts}
    return _MESSAGE_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


class CheckpointSigner:
    """One node's signing key."""

    def __init__(self, private: Ed25519PrivateKey, node: str) -> None:
        self._private = private
        self.node = node
        self.public_raw = raw_public(private.public_key())
        self.key_id = key_id_of(self.public_raw)

    @classmethod
    def load_or_create(cls, secrets_dir: Path, node: str) -> CheckpointSigner:
        """The node's key from ``secrets_dir``, generated (0600) on first use."""
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = secrets_dir / SIGNING_KEY_FILE
        if not path.exists():
            raw = Ed25519PrivateKey.generate().private_bytes_raw()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process won the race; use its key
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(raw)
                    fh.flush()
                    os.fsync(fh.fileno())
        return cls(Ed25519PrivateKey.from_private_bytes(path.read_bytes()), node)

    def audit_key(self, created: str) -> AuditKey:
        return AuditKey(self.key_id, self.node, base64.b64encode(self.public_raw).decode(), created)

    def sign(self, seq: int, hash: str, count: int, ts: str) -> Checkpoint:
        signature = self._private.sign(checkpoint_message(seq, hash, count, ts, self.node, self.key_id))
        return Checkpoint(seq, hash, count, ts, self.node, self.key_id, base64.b64encode(signature).decode())


class TrustedKeys:
    """Public keys a verifier accepts checkpoint signatures from, by key id."""

    def __init__(self, keys: Iterable[tuple[bytes, str]] = ()) -> None:
        self._keys: dict[str, tuple[Ed25519PublicKey, str]] = {}
        for raw, node in keys:
            self.add(raw, node)

    def add(self, public_raw: bytes, node: str = "") -> str:
        key_id = key_id_of(public_raw)
        self._keys[key_id] = (Ed25519PublicKey.from_public_bytes(public_raw), node)
        return key_id

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def node_of(self, key_id: str) -> str:
        return self._keys[key_id][1] if key_id in self._keys else ""

    def check(self, cp: Checkpoint) -> str | None:
        """None if ``cp`` carries a good signature by a trusted key, else what is wrong."""
        if cp.key_id not in self._keys:
            return f"checkpoint at seq {cp.seq} is signed by key {cp.key_id} (node {cp.node}), which is not trusted"
        try:
            signature = base64.b64decode(cp.signature, validate=True)
            self._keys[cp.key_id][0].verify(signature, cp.message())
        except (InvalidSignature, ValueError):
            return f"checkpoint at seq {cp.seq} has a bad signature (key {cp.key_id})"
        return None

    @classmethod
    def for_node(cls, secrets_dir: Path, signer: CheckpointSigner | None = None) -> TrustedKeys:
        """This node's own key plus the keys pinned in ``secrets/audit_trusted_keys``."""
        trusted = cls()
        if signer is not None:
            trusted.add(signer.public_raw, signer.node)
        elif (secrets_dir / SIGNING_KEY_FILE).exists():
            private = Ed25519PrivateKey.from_private_bytes((secrets_dir / SIGNING_KEY_FILE).read_bytes())
            trusted.add(raw_public(private.public_key()))
        path = secrets_dir / TRUSTED_KEYS_FILE
        if path.exists():
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(f"{path}:{n}: expected '<key_id> <base64 public key> [node]'")
                raw = base64.b64decode(parts[1], validate=True)
                if key_id_of(raw) != parts[0]:
                    raise ValueError(f"{path}:{n}: key id {parts[0]} does not match the public key")
                trusted.add(raw, parts[2] if len(parts) > 2 else "")
        return trusted


def pin_line(key: AuditKey) -> str:
    """The ``audit_trusted_keys`` line that makes a verifier trust ``key``."""
    return f"{key.key_id} {key.public_key} {key.node}"
