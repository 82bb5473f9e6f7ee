"""Bearer tokens: who is calling, and how strongly they proved it.

Tokens are short JWTs signed with a per-deployment key kept in the data directory.
They carry only the account id and how it authenticated (``amr``); role, agency and
buildings are read from the directory (gateway/identity/directory.py: the site file, or
a person provisioned at sign-in) on every request, so removing an account revokes its
tokens at once.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from emergency.model import Actor
from emergency.permissions import Permission, role_holds
from emergency.site import Site
from gateway.identity.directory import Directory

ISSUER = "sightline"
ALGORITHM = "HS256"
DEFAULT_TTL = 8 * 3600
MAX_TTL = 30 * 24 * 3600

# Methods that count as multi-factor. "cli" is an operator issuing a token with the
# server's own key material (a privileged, audited act), not a password.
STRONG_AMR = {"mfa", "cli"}

# How a records system authenticated at /oauth/token (gateway/identity/oauth.py). Not a second factor.
CLIENT_CREDENTIALS_AMR = "client_credentials"


class AuthError(Exception):
    """The credentials are missing, malformed, expired or unknown."""


@dataclass(frozen=True)
class Identity:
    actor: Actor
    token_id: str
    expires: int
    # A records client's scopes: those the token was issued for that the site file still
    # grants (removing one from the site file takes it away at once). Empty for people.
    scopes: frozenset[str] = frozenset()


def load_or_create_key(secrets_dir: Path) -> bytes:
    """The signing key, created on first use with owner-only permissions."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / "token-signing.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


class TokenAuthority:
    def __init__(self, key: bytes, site: Site, directory: Directory | None = None) -> None:
        self._key = OctKey.import_key(key)
        self._site = site
        self.directory = directory or Directory(site)

    def issue(
        self,
        account_id: str,
        *,
        ttl: int = DEFAULT_TTL,
        amr: tuple[str, ...] = ("cli",),
        scopes: tuple[str, ...] | None = None,
    ) -> tuple[str, str]:
        """Returns (token, token id). The caller audits the issuance.

        A records client's token carries ``scope`` (space-separated, RFC 6749 3.3): the
        requested ``scopes``, which must be a subset of the account's, or all of them."""
        account = self.directory.get(account_id)
        if account is None:
            raise AuthError(f"no account '{account_id}' in the site file")
        if not 0 < ttl <= MAX_TTL:
            raise AuthError(f"ttl must be between 1 and {MAX_TTL} seconds")
        now = int(time.time())
        jti = secrets.token_urlsafe(12)
        claims = {"iss": ISSUER, "sub": account_id, "iat": now, "exp": now + ttl, "jti": jti, "amr": list(amr)}
        if role_holds(account.role, Permission.USE_CLIENT_CREDENTIALS):
            granted = account.scopes if scopes is None else tuple(dict.fromkeys(scopes))
            extra = [s for s in granted if s not in account.scopes]
            if extra or not granted:
                raise AuthError(
                    f"scope {' '.join(extra) or '(none)'} is not granted to '{account_id}'; "
                    f"it may have {' '.join(account.scopes)}"
                )
            claims["scope"] = " ".join(granted)
        elif scopes:
            raise AuthError(f"'{account_id}' is not a records client; only records clients have scopes")
        return jwt.encode({"alg": ALGORITHM}, claims, self._key), jti

    def authenticate(self, token: str) -> Identity:
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthError("the token is not valid") from exc
        now = int(time.time())
        exp = claims.get("exp")
        if claims.get("iss") != ISSUER or not isinstance(exp, int) or exp <= now:
            raise AuthError("the token is expired or not ours; ask for a new one")
        account = self.directory.get(str(claims.get("sub")))
        if account is None:
            raise AuthError("the token's account no longer exists")
        amr = claims.get("amr") or []
        actor = Actor.from_account(
            account, mfa=bool(STRONG_AMR.intersection(amr)), delegations=self._site.delegations(account)
        )
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) & frozenset(account.scopes) if isinstance(scope, str) else frozenset()
        return Identity(actor=actor, token_id=str(claims.get("jti", "")), expires=exp, scopes=scopes)
