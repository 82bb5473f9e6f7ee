"""Bearer tokens: who is calling, and how strongly they proved it.

Tokens are short JWTs signed with a per-deployment key kept in the data directory.
They carry only the account id and how it authenticated (``amr``); role, agency and
buildings are read from the directory (gateway/identity/directory.py: the site file, or
a person provisioned at sign-in) on every request, so removing an account revokes its
tokens at once.

Every token names its sign-in (``sid``, emergency/sign_ins.py) and is refused once that
sign-in has ended (signed out, locked, revoked) or expired: the row is read again at
most ``SIGN_IN_CACHE_SECONDS`` after the last read, so a revocation on any node bites
here within that. Only an ``amr`` with "mfa" from a sign-in recorded as MFA counts as
multi-factor; an operator's ``sightline token`` (amr "cli") never does.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from emergency.model import Actor
from emergency.permissions import Permission, role_holds
from emergency.sign_ins import CLI, CLIENT_CREDENTIALS, PASSWORD, PASSWORD_TOTP, SignInRecord, SignIns
from emergency.site import Account, Site
from gateway.identity.directory import Directory

ISSUER = "sightline"
ALGORITHM = "HS256"
DEFAULT_TTL = 8 * 3600
MAX_TTL = 30 * 24 * 3600

# Methods that count as multi-factor. Not "cli": a token printed by `sightline token` is
# for automation; it proves only that someone could read the node's files.
STRONG_AMR = {"mfa"}
SIGN_IN_CACHE_SECONDS = 0.25

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
    sign_in: str = ""  # the sign-in the token names (emergency/sign_ins.py)
    method: str = ""  # how that sign-in was made: "password+totp", "cli", ...
    web_session: str | None = None  # the pages' session key, when the cookie authenticated


def _method_of(amr: tuple[str, ...]) -> str:
    """The sign-in method a token stands for when its issuer names none."""
    if CLIENT_CREDENTIALS in amr:
        return CLIENT_CREDENTIALS
    if "cli" in amr or not amr:
        return CLI
    return PASSWORD_TOTP if "mfa" in amr else PASSWORD


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
    def __init__(
        self, key: bytes, site: Site, directory: Directory | None = None, sign_ins: SignIns | None = None
    ) -> None:
        self._key = OctKey.import_key(key)
        self._site = site
        self.directory = directory or Directory(site)
        self.sign_ins = sign_ins
        self._seen: dict[str, tuple[float, SignInRecord | None]] = {}
        self._seen_lock = threading.Lock()

    def issue(
        self,
        account_id: str,
        *,
        ttl: int = DEFAULT_TTL,
        amr: tuple[str, ...] = ("cli",),
        scopes: tuple[str, ...] | None = None,
        sign_in: SignInRecord | None = None,
        method: str | None = None,
    ) -> tuple[str, str]:
        """Returns (token, token id). The caller audits the issuance.

        The token names ``sign_in``; without one, a new sign-in is recorded for it alone
        (``method``, by default "cli" or "client_credentials" from ``amr``), lasting ``ttl``.
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
        if role_holds(account.role, Permission.USE_CLIENT_CREDENTIALS) or scopes:
            self._scope(claims, account, account_id, scopes)
        if sign_in is None and self.sign_ins is not None:
            how = method or _method_of(amr)
            sign_in = self.sign_ins.open(account_id, method=how, mfa="mfa" in amr, ttl=ttl)
        if sign_in is not None:
            if sign_in.account_id != account_id:
                raise AuthError("a token must name a sign-in of its own account")
            claims["sid"] = sign_in.id
        return jwt.encode({"alg": ALGORITHM}, claims, self._key), jti

    @staticmethod
    def _scope(claims: dict, account: Account, account_id: str, scopes: tuple[str, ...] | None) -> None:
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

    def claims(self, token: str) -> dict:
        """The claims of a token we signed (expired or not); {} for anything else."""
        try:
            return dict(jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims)
        except (JoseError, ValueError, TypeError):
            return {}

    def sign_in_of(self, token: str) -> str | None:
        sid = self.claims(token).get("sid")
        return sid if isinstance(sid, str) else None

    def forget(self, sign_in_id: str) -> None:
        """Drop the cached state of a sign-in this node just changed (ended, renewed)."""
        with self._seen_lock:
            self._seen.pop(sign_in_id, None)

    def _sign_in(self, sid: str) -> SignInRecord | None:
        assert self.sign_ins is not None
        now = time.monotonic()
        with self._seen_lock:
            seen = self._seen.get(sid)
        if seen is not None and now - seen[0] < SIGN_IN_CACHE_SECONDS:
            return seen[1]
        record = self.sign_ins.get(sid)
        with self._seen_lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[sid] = (now, record)
        return record

    def check_sign_in(self, sid: object, account_id: str) -> SignInRecord | None:
        """The live sign-in a token names; AuthError when it has ended, expired or is
        unknown. None only when this authority keeps no sign-ins (a bare test key)."""
        if self.sign_ins is None:
            return None
        if not isinstance(sid, str) or not sid:
            raise AuthError("the token names no sign-in (issued before sign-ins were recorded)")
        record = self._sign_in(sid)
        if record is None or record.account_id != account_id:
            raise AuthError("the token's sign-in is unknown")
        why = record.why_not_live(self.sign_ins.now())
        if why is not None:
            raise AuthError(f"the token's sign-in has ended ({why})")
        return record

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
        record = self.check_sign_in(claims.get("sid"), account.id)
        amr = claims.get("amr") or []
        mfa = bool(STRONG_AMR.intersection(amr)) and (record is None or record.mfa)
        actor = Actor.from_account(account, mfa=mfa, delegations=self._site.delegations(account))
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) & frozenset(account.scopes) if isinstance(scope, str) else frozenset()
        return Identity(
            actor=actor,
            token_id=str(claims.get("jti", "")),
            expires=exp,
            scopes=scopes,
            sign_in=record.id if record else "",
            method=record.method if record else ("cli" if "cli" in amr else ""),
        )
