"""The sign-in routes: ``POST /api/v1/auth/login``, ``/logout`` and ``GET /session``.

The sessions, the idle lock, CSRF and failure limits they use are in
gateway/identity/signin.py; this module only speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.permissions import Permission, role_holds
from emergency.sign_ins import PASSWORD, PASSWORD_TOTP, SIGNED_OUT
from gateway.errors import ApiError
from gateway.identity import totp
from gateway.identity.caller import client_address, gateway
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.failures import failure_summary
from gateway.identity.guards import public, requires
from gateway.identity.logins import verify_password
from gateway.identity.signin import (
    AMR_MFA,
    AMR_PASSWORD,
    CSRF_HEADER,
    CSRF_VALUE,
    GENERIC_REFUSAL,
    SESSION_COOKIE,
    SessionProblem,
    SignInUnavailable,
    WebSession,
    clear_cookie_header,
    cookie_identity,
    end_session_sign_in,
    iso_utc,
    open_web_session,
    secure_cookies,
    sign_in_state,
)

if TYPE_CHECKING:
    from emergency.site import Account

router = APIRouter(prefix="/api/v1/auth", tags=["sign-in"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16, description="the 6-digit code from the authenticator")


def attack_detail(wait: int) -> str:
    return (
        "too many failed sign-ins for this account; sign in with your password and authenticator code, "
        f"or wait {wait} seconds and try again"
    )


def _session_view(gw, actor: Actor, session: WebSession, sessions: Any) -> dict[str, Any]:
    return {
        "user": actor.id,
        "name": gw.tokens.directory.name(actor.id),
        "role": str(actor.role),
        "agency": actor.agency,
        "amr": list(session.amr),
        "mfa": session.mfa,
        "expires": iso_utc(sessions.idle_deadline(session)),
        "idle_timeout_seconds": sessions.idle_seconds,
        "signed_in_at": iso_utc(session.created),
    }


def address_detail(wait: int) -> str:
    return (
        "too many failed sign-ins from your network; sign in with your password and authenticator code, "
        f"or wait {wait} seconds and try again"
    )


@dataclass
class Checked:
    """A password (and code) that passed :func:`check_password_sign_in`."""

    account: Account
    amr: tuple[str, ...]
    source: str | None
    passed: str | None  # which limit the caller was let past, and why (for the audit entry)
    unavailable: Callable[[SignInUnavailable], SignInUnavailable]

    def succeeded(self, state: Any) -> None:
        """After the sign-in was opened: clear the pair's failures, remember the address."""
        key = self.account.id.lower()
        state.per_user.clear((key, self.source))
        state.remember_source(key, self.source)


def check_password_sign_in(request: Request, username: str, password: str, code: str | None, method: str) -> Checked:
    """Checks a username, password and (when enrolled) authenticator code under the
    failure limits (gateway/identity/signin.py), auditing every refusal as ``auth.login``
    with ``method``; the one check behind ``/login`` and ``/token``. Raises ApiError."""
    gw = gateway(request)
    state = sign_in_state(request)
    source = client_address(request)
    username = username.strip()
    account_key = username.lower()
    user_key = (account_key, source)
    account = gw.config.site.accounts.get(username)
    audit_actor = username if account else "unknown"
    # While the account is under attack from several addresses, or its address sent too
    # many failures (gateway/identity/signin.py), a failure is answered like the limit, so
    # it does not tell a right password from a wrong one.
    attacked = 0
    limited_by = "account"

    def refuse(
        reason: str,
        status: int = 401,
        detail: str = GENERIC_REFUSAL,
        headers: dict[str, str] | None = None,
        count: bool = True,
    ) -> ApiError:
        gw.metrics.auth_failures.inc()
        if attacked and status == 401:
            wording = attack_detail if limited_by == "account" else address_detail
            status, detail, headers = 429, wording(attacked), {"Retry-After": str(attacked)}
            reason = (
                f"{reason}; the account is limited after failures from several addresses"
                if limited_by == "account"
                else f"{reason}; the address is limited after many failures (only password and a fresh code pass)"
            )
        if (
            count
            or status != 429
            or failure_summary(request).first(
                source, kind="refused sign-in", reason=f"account:{username[:64]}: {reason}"
            )
        ):  # refusals without checking are counted per source and minute, like bad tokens
            gw.audit.append(
                AuditEvent.AUTH_LOGIN,
                actor_id=audit_actor,
                object=f"account:{username[:64]}",
                outcome="denied",
                source=source,
                reason=reason,
                details={"method": method},
            )
        if count:  # may raise SignInUnavailable (503) when the shared store is down; audited above
            state.per_user.record(user_key)
            state.per_address.record(source)
            state.per_account.record(account_key)
        return ApiError(
            status,
            "unauthorized" if status == 401 else "too_many_requests" if status == 429 else "misconfigured",
            detail,
            headers,
        )

    def unavailable(exc: SignInUnavailable) -> SignInUnavailable:
        gw.audit.append(
            AuditEvent.AUTH_LOGIN,
            actor_id=audit_actor,
            object=f"account:{username[:64]}",
            outcome="denied",
            source=source,
            reason="the shared sign-in store (Redis) cannot be reached; answered 503",
            details={"method": method},
        )
        return exc

    passed = None
    try:
        wait = state.per_user.retry_after(user_key)
        known = state.known_source(account_key, source)
        # The address limit never stops a person who signed in from there before (a
        # whole agency behind one VPN or NAT address); anyone else needs password + code.
        address_wait = 0 if wait else state.per_address.retry_after(source)
        if address_wait and known:
            passed, address_wait = "address limit passed: an address this account signed in from before", 0
        limited = 0 if wait else state.per_account.retry_after(account_key)
        attacked = limited if limited and not known else 0
        if address_wait > attacked:
            attacked, limited_by = address_wait, "address"
    except SignInUnavailable as exc:
        raise unavailable(exc) from None
    if wait:
        raise refuse(
            "too many failed sign-ins; refused without checking",
            429,
            f"too many failed sign-ins; wait {wait} seconds and try again",
            {"Retry-After": str(wait)},
            count=False,
        )

    login_cfg = gw.config.logins.get(username) if account else None
    if attacked and not (login_cfg and login_cfg.has_totp):
        raise refuse(
            (
                "too many failed sign-ins for this account from several addresses"
                if limited_by == "account"
                else "too many failed sign-ins from this address"
            )
            + "; refused without checking (no authenticator enrolled, and not an address it signed in from before)",
            count=False,
        )
    password_ok = verify_password(password, login_cfg.password_hash if login_cfg else None)
    if account is None:
        raise refuse("unknown account")
    if not role_holds(account.role, Permission.SIGN_IN):
        raise refuse(f"a {account.role} account cannot sign in to the pages")
    if login_cfg is None or not login_cfg.password_hash:
        raise refuse("the account has no password set")
    if not password_ok:
        raise refuse("bad password")

    amr: tuple[str, ...] = AMR_PASSWORD
    if login_cfg.has_totp:
        if not code:
            raise refuse("TOTP code missing")
        try:
            secret = CredentialBox.for_dir(gw.config.secrets_dir).open(login_cfg.sealed_totp or "")
        except CredentialError:
            raise refuse(
                "the account's TOTP secret cannot be opened with this node's key",
                503,
                "sign-in is misconfigured on this server; tell the administrator",
                count=False,
            ) from None
        step = totp.verify(secret, code)
        if step is None:
            raise refuse("bad TOTP")
        if not gw.receipts.first_time(f"totp:{account.id}", str(step)):
            raise refuse("TOTP code already used (replay)")
        amr = AMR_MFA
        if attacked:
            passed = f"{limited_by} limit passed: password and a fresh authenticator code"
    return Checked(account, amr, source, passed, unavailable)


@router.post("/login", dependencies=[Depends(public("signing in: username, password and authenticator code"))])
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Sign in with username, password and (when enrolled) the authenticator code."""
    gw = gateway(request)
    state = sign_in_state(request)
    checked = check_password_sign_in(request, body.username, body.password, body.totp, PASSWORD_TOTP)
    mfa = checked.amr == AMR_MFA
    try:
        actor, session = open_web_session(
            request,
            response,
            checked.account,
            checked.amr,
            reason="signed in with password and authenticator code"
            if mfa
            else "signed in with password only (no second factor)",
            details={"limit": checked.passed} if checked.passed else None,
            method=PASSWORD_TOTP if mfa else PASSWORD,
        )
        checked.succeeded(state)
    except SignInUnavailable as exc:
        raise checked.unavailable(exc) from None
    return _session_view(gw, actor, session, state.sessions)


@router.post("/logout", dependencies=[Depends(public("ends the caller's own session, if any"))])
def logout(request: Request, response: Response) -> dict[str, Any]:
    """End the web session. Needs the CSRF header like any cookie-authenticated change."""
    gw = gateway(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookies(request))
    if not cookie:
        return {"signed_out": True}
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ApiError(403, "csrf", f"send the header '{CSRF_HEADER}: {CSRF_VALUE}'")
    session = sign_in_state(request).sessions.end(cookie)
    if session is not None:
        gw.audit.append(
            AuditEvent.AUTH_LOGOUT,
            actor_id=session.account_id,
            object=f"session:{session.token_id}",
            source=client_address(request),
            reason="signed out",
        )
        end_session_sign_in(gw.tokens, session, SIGNED_OUT)  # its video stops on every node
    return {"signed_out": True}


@router.get("/session", dependencies=[Depends(requires(Permission.SIGN_IN))])
def current_session(request: Request) -> dict[str, Any]:
    """Who the cookie signs in, and when the idle lock will fall. Sent with
    ``X-Sightline-Activity: passive`` it does not count as activity."""
    gw = gateway(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise ApiError(401, "unauthorized", "not signed in")
    ident = cookie_identity(request, cookie)
    state = sign_in_state(request)
    try:
        session = state.sessions.lookup(cookie, touch=False)
    except SessionProblem:  # ended in between (another node may have signed it out)
        raise ApiError(401, "unauthorized", "your session has ended; sign in again", clear_cookie_header()) from None
    return _session_view(gw, ident.actor, session, state.sessions)
