"""Sign-ins: what every token and session of a person hangs on, so they can be taken back.

A sign-in is one proof of who someone is (password and authenticator code, an agency's
provider, a guest pass, an operator's ``sightline token``, a records client's secret).
Every token names its sign-in (``sid``); a token is good only while its sign-in has not
ended and has not expired. Ending a sign-in (sign-out, the idle lock, an administrator's
revocation) therefore ends every token and web session that came from it, on every node,
and the nodes close the video it opened (gateway/runtime.py). ``expires`` moves forward
only when a short-lived token is renewed; a sign-in nobody renews runs out.

Kept in the database (revision 0003, ``sign_ins``): all nodes read the same rows.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from emergency.clock import Clock
from emergency.store import SignInRepo

# How a person proved who they are: the ``method`` of a sign-in.
PASSWORD_TOTP = "password+totp"
PASSWORD = "password"
CLI = "cli"
CLIENT_CREDENTIALS = "client_credentials"
OIDC = "oidc"  # an agency's (or the district's) OpenID Connect provider
GUEST_PASS = "guest_pass"  # a mutual-aid responder's link and PIN (emergency.guest_passes)

REVOKED = "access revoked by {by}"
SIGNED_OUT = "signed out"
IDLE_LOCKED = "locked after a period without activity"
EXPIRED = "sign-in expired without renewal"


@dataclass(frozen=True)
class SignInRecord:
    id: str
    account_id: str
    method: str
    mfa: bool
    created: datetime
    expires: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    ended_by: str | None = None

    def live(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.expires

    def why_not_live(self, now: datetime) -> str | None:
        """None while it holds; else the plain reason its tokens and video stop."""
        if self.ended_at is not None:
            return self.end_reason or "the sign-in has ended"
        if now >= self.expires:
            return EXPIRED
        return None


class SignIns:
    """Opens, renews and ends sign-ins. The caller audits (it knows the request)."""

    def __init__(self, store: SignInRepo, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    def open(self, account_id: str, *, method: str, mfa: bool, ttl: float) -> SignInRecord:
        now = self._clock.now()
        record = SignInRecord(
            id=secrets.token_urlsafe(12),
            account_id=account_id,
            method=method,
            mfa=mfa,
            created=now,
            expires=now + timedelta(seconds=ttl),
        )
        self._store.insert_sign_in(record)
        return record

    def get(self, sign_in_id: str) -> SignInRecord | None:
        return self._store.get_sign_in(sign_in_id)

    def renew(self, sign_in_id: str, ttl: float) -> SignInRecord | None:
        """Moves ``expires`` to ``ttl`` from now; None when the sign-in is no longer live."""
        with self._store.transaction():
            record = self._store.get_sign_in(sign_in_id)
            now = self._clock.now()
            if record is None or not record.live(now):
                return None
            renewed = replace(record, expires=now + timedelta(seconds=ttl))
            self._store.update_sign_in(renewed)
        return renewed

    def end(self, sign_in_id: str, reason: str, *, by: str) -> SignInRecord | None:
        """Ends one sign-in; None when it had ended already (or never was)."""
        with self._store.transaction():
            record = self._store.get_sign_in(sign_in_id)
            if record is None or record.ended_at is not None:
                return None
            ended = replace(record, ended_at=self._clock.now(), end_reason=reason, ended_by=by)
            self._store.update_sign_in(ended)
        return ended

    def end_all(self, account_id: str, reason: str, *, by: str) -> list[SignInRecord]:
        """Ends every sign-in of one person that has not ended (expired ones included, so
        nothing of theirs can be renewed); returns those it ended."""
        with self._store.transaction():
            now = self._clock.now()
            ended = [
                replace(r, ended_at=now, end_reason=reason, ended_by=by)
                for r in self._store.sign_ins_of(account_id, unended_only=True)
            ]
            for r in ended:
                self._store.update_sign_in(r)
        return ended

    def statuses(self, ids: list[str]) -> dict[str, SignInRecord]:
        """The sign-ins named, in one read (the video watcher asks for all it serves)."""
        return {r.id: r for r in self._store.sign_ins_by_id(ids)} if ids else {}

    def watching(self, ids: list[str]) -> set[str]:
        """Those of the sign-ins named whose video plays now, on any node."""
        return self._store.sign_ins_watching(ids)

    def live_of(self, account_id: str | None = None) -> list[SignInRecord]:
        """Sign-ins not ended nor expired (one person's, or everyone's), oldest first."""
        return self._store.live_sign_ins(self._clock.now(), account_id)
