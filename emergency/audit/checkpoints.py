"""Ed25519-signed checkpoints of the audit chain.

A checkpoint says "the entry at ``seq`` has hash ``hash``, and the ``count`` entries up to
it are mine", signed by one node's key. The writer signs one for every commit batch, in
the same transaction as the entries (``count`` is the batch's size, message v2), so every
entry lies in the range of exactly one checkpoint and a row added, or a checkpoint
deleted, by someone without the key leaves a range no signature covers. Release 0.1
signed the chain's head now and then (v1, ``count == seq``: it covers seq 1 to ``seq``).

Since message v3 the checkpoints form a chain of their own: each carries ``prev``, the
SHA-256 of the previous checkpoint's signed message (the last one in the database when its
batch committed, whichever node signed it), and the signer links only to a checkpoint it
signed itself or whose signature it checked; so one good signature vouches for every
checkpoint the links lead back to, and verify checks a signature only where the links do
not connect (``prev == ""``: the first checkpoint, or one the writer could not vouch for;
or a v1/v2 checkpoint, which has no link). Each node generates its own key into the data
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
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)
_quote = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str

SIGNING_KEY_FILE = "audit-signing.key"
TRUSTED_KEYS_FILE = "audit_trusted_keys"
_MESSAGE_PREFIX = b"sightline-audit-checkpoint/v2\n"
_V1_PREFIX = b"sightline-audit-checkpoint/v1\n"
_V3_PREFIX = b"sightline-audit-checkpoint/v3\n"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    count: int
    ts: str
    node: str
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature
    prev: str | None = None  # v3: link() of the previous checkpoint ("" for none); None: v1/v2

    def message(self) -> bytes:
        """The signed bytes: a versioned prefix and the fields as canonical JSON."""
        if self.prev is not None:
            return checkpoint_message_v3(self.seq, self.hash, self.count, self.ts, self.node, self.key_id, self.prev)
        return checkpoint_message(self.seq, self.hash, self.count, self.ts, self.node, self.key_id)

    def link(self) -> str:
        """What the next checkpoint's ``prev`` holds: the hex SHA-256 of this one's message."""
        return hashlib.sha256(self.message()).hexdigest()

    @property
    def first(self) -> int:
        """The first seq this checkpoint vouches for (its batch; 1 for a v1 checkpoint)."""
        return self.seq - self.count + 1


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    node: str
    public_key: str  # base64 of the 32 raw bytes
    created: str


def checkpoint_message(
    seq: int, hash: str, count: int, ts: str, node: str, key_id: str, prefix: bytes = _MESSAGE_PREFIX
) -> bytes:
    """The fields as ``json.dumps(sort_keys=True, separators=(",", ":"))`` writes them,
    formatted directly (verify builds one message per checkpoint)."""
    q = _quote
    return (
        prefix
        + (
            f'{{"count":{int(count)},"hash":{q(hash)},"key_id":{q(key_id)},"node":{q(node)},'
            f'"seq":{int(seq)},"ts":{q(ts)}}}'
        ).encode()
    )


def checkpoint_message_v3(seq: int, hash: str, count: int, ts: str, node: str, key_id: str, prev: str) -> bytes:
    q = _quote
    return (
        _V3_PREFIX
        + (
            f'{{"count":{int(count)},"hash":{q(hash)},"key_id":{q(key_id)},"node":{q(node)},"prev":{q(prev)},'
            f'"seq":{int(seq)},"ts":{q(ts)}}}'
        ).encode()
    )


def record_line(cp: Checkpoint) -> str:
    """``cp`` as the witness and the mirror write it: its fields as sorted compact JSON
    (``prev`` only for v3), formatted directly so verify can compare lines as text."""
    q = _quote
    prev = "" if cp.prev is None else f'"prev":{q(cp.prev)},'
    return (
        f'{{"count":{int(cp.count)},"hash":{q(cp.hash)},"key_id":{q(cp.key_id)},"node":{q(cp.node)},{prev}'
        f'"seq":{int(cp.seq)},"signature":{q(cp.signature)},"ts":{q(cp.ts)}}}'
    )


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
        """The node's key from ``secrets_dir``, generated (0600) on first use; an existing
        key readable by others is refused unless it is ours to tighten (see ``owner_only``)."""
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner_only(secrets_dir, 0o700)
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
        owner_only(path, 0o600)
        return cls(Ed25519PrivateKey.from_private_bytes(path.read_bytes()), node)

    def mac_key(self, purpose: bytes) -> bytes:
        """A secret for ``purpose`` derived from the private key (only its holder can make it)."""
        return hashlib.sha256(b"sightline-audit/" + purpose + b"\n" + self._private.private_bytes_raw()).digest()

    def audit_key(self, created: str) -> AuditKey:
        return AuditKey(self.key_id, self.node, base64.b64encode(self.public_raw).decode(), created)

    def sign(self, seq: int, hash: str, count: int, ts: str, prev: str = "") -> Checkpoint:
        """A v3 checkpoint linked to the checkpoint whose ``link()`` is ``prev`` ("": none)."""
        signature = self._private.sign(checkpoint_message_v3(seq, hash, count, ts, self.node, self.key_id, prev))
        return Checkpoint(seq, hash, count, ts, self.node, self.key_id, base64.b64encode(signature).decode(), prev)


class KeyPermissionError(PermissionError):
    """The signing key (or its folder) belongs to another user: it cannot be trusted or fixed."""


def owner_only(path: Path, mode: int) -> None:
    """Owner-only permissions on the key and its folder: a group- or world-accessible one
    owned by this user is tightened to ``mode`` (with a warning: whoever could read it
    before may hold a copy); one owned by another user is refused."""
    st = path.stat()
    if st.st_mode & 0o077 == 0:
        return
    if st.st_uid != os.geteuid():
        raise KeyPermissionError(
            f"{path} is mode {st.st_mode & 0o777:o} and owned by uid {st.st_uid}, not this user: "
            "the audit signing key must be owner-only (chmod go-rwx, chown to the gateway's user)"
        )
    os.chmod(path, mode)
    log.warning(
        "%s was mode %o; tightened to %o (the audit signing key must be owner-only; "
        "if others could read it, rotate the key)",
        path,
        st.st_mode & 0o777,
        mode,
    )


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

    def check_fields(self, cp: Checkpoint) -> str | None:
        """The cheap part of ``check``: a trusted key id and a possible count."""
        if cp.key_id not in self._keys:
            return f"checkpoint at seq {cp.seq} is signed by key {cp.key_id} (node {cp.node}), which is not trusted"
        if not 1 <= cp.count <= cp.seq:
            return f"checkpoint at seq {cp.seq} claims {cp.count} entries, more than the log then held"
        return None

    def check(self, cp: Checkpoint) -> str | None:
        """None if ``cp`` carries a good signature by a trusted key, else what is wrong."""
        problem = self.check_fields(cp)
        if problem:
            return problem
        key = self._keys[cp.key_id][0]
        try:
            signature = base64.b64decode(cp.signature, validate=True)
            key.verify(signature, cp.message())
        except (InvalidSignature, ValueError):
            try:  # a release-0.1 checkpoint (v1) signed the whole chain up to its seq
                if cp.count != cp.seq or cp.prev is not None:
                    raise InvalidSignature from None
                key.verify(
                    base64.b64decode(cp.signature, validate=True),
                    checkpoint_message(cp.seq, cp.hash, cp.count, cp.ts, cp.node, cp.key_id, _V1_PREFIX),
                )
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
