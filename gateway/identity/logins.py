"""Local sign-in credentials of site-file accounts: a password hash and a sealed TOTP secret.

They sit on the ``[[accounts]]`` entries of the site file, like a camera's sealed
password sits on its ``[[cameras]]`` entry, and are popped off before the site model
is parsed, so ``emergency/`` never sees a secret:

    [[accounts]]
    id = "officer"
    ...
    password_hash = "scrypt$16384$8$1$<salt b64>$<hash b64>"
    totp_secret = "enc:v1:..."        # sealed with the node's credential key

Passwords are hashed with scrypt (hashlib); the TOTP secret is sealed with
:class:`gateway.identity.credentials.CredentialBox` and opened only when a code is checked.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gateway.identity.credentials import PREFIX as SEALED_PREFIX

CREDENTIAL_KEYS = ("password_hash", "totp_secret")

# scrypt cost: 16 MiB and ~50 ms per check on a laptop core; within OpenSSL's default memory cap.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class LoginConfigError(ValueError):
    """A credential on an [[accounts]] entry is malformed; the message names it."""


@dataclass(frozen=True)
class AccountLogin:
    password_hash: str | None = field(default=None, repr=False)
    sealed_totp: str | None = field(default=None, repr=False)

    @property
    def has_totp(self) -> bool:
        return bool(self.sealed_totp)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        raise ValueError("not an scrypt hash")
    n_, r_, p_ = int(n), int(r), int(p)
    if n_ < 2 or n_ & (n_ - 1) or not 0 < r_ <= 64 or not 0 < p_ <= 16 or 128 * r_ * n_ > _MAXMEM // 2:
        raise ValueError("scrypt parameters out of range")
    return n_, r_, p_, base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def check_password_hash(stored: str) -> None:
    try:
        _parse(stored)
    except (ValueError, TypeError) as exc:
        raise LoginConfigError(f"expected 'scrypt$N$r$p$<salt>$<hash>' ({exc})") from None


# A well-formed hash of a random password: checked against when the account is unknown
# or has no password, so a refusal takes as long as a wrong password does.
@functools.cache
def _decoy() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str | None) -> bool:
    try:
        n, r, p, salt, digest = _parse(stored or _decoy())
    except (ValueError, TypeError):
        n, r, p, salt, digest = _parse(_decoy())
        stored = None
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest))
    return hmac.compare_digest(candidate, digest) and stored is not None


def pop_account_logins(raw: dict, path: Path | str) -> dict[str, AccountLogin]:
    """Take the credential keys off every ``[[accounts]]`` entry of the parsed site file."""
    logins: dict[str, AccountLogin] = {}
    accounts = raw.get("accounts", [])
    if not isinstance(accounts, list):
        return logins  # load_site names the problem
    for i, entry in enumerate(accounts):
        if not isinstance(entry, dict):
            continue
        values = {k: entry.pop(k) for k in CREDENTIAL_KEYS if k in entry}
        if not values:
            continue
        where = f"{path}: accounts[{i}]"
        for key, value in values.items():
            if not isinstance(value, str) or not value:
                raise LoginConfigError(f"{where}.{key} must be a non-empty string")
        if "password_hash" in values:
            try:
                check_password_hash(values["password_hash"])
            except LoginConfigError as exc:
                raise LoginConfigError(f"{where}.password_hash: {exc}") from None
        if "totp_secret" in values and not values["totp_secret"].startswith(SEALED_PREFIX):
            raise LoginConfigError(
                f"{where}.totp_secret is stored in plain text; store the sealed form "
                "(gateway.identity.credentials.CredentialBox.seal), like camera passwords"
            )
        ident = entry.get("id")
        if isinstance(ident, str):
            logins[ident] = AccountLogin(values.get("password_hash"), values.get("totp_secret"))
    return logins
