"""Camera credentials at rest: encrypted in the site file, decrypted only in memory.

The site file is meant to be edited, copied and reviewed, so it must be safe to show;
the key that opens it lives with the node's other secrets in the data directory.
Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc:v1:"


class CredentialError(ValueError):
    """A stored credential cannot be opened (wrong key, edited text, or not encrypted)."""


def _key_path(secrets_dir: Path) -> Path:
    return secrets_dir / "camera-credentials.key"


def load_or_create_key(secrets_dir: Path) -> bytes:
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _key_path(secrets_dir)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return path.read_bytes()


class CredentialBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def for_dir(cls, secrets_dir: Path) -> CredentialBox:
        return cls(load_or_create_key(secrets_dir))

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        if not sealed.startswith(PREFIX):
            raise CredentialError("the password is not encrypted; set it with 'sightline cameras add'")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise CredentialError(
                "the password cannot be decrypted with this node's key (secrets/camera-credentials.key); "
                "re-enter it with 'sightline cameras add'"
            ) from None
