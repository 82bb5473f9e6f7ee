"""Short-lived bearer tokens for people: ``POST /api/v1/auth/token`` (username, password,
code) and ``POST /api/v1/auth/token/renew``.

A token from here lives at most ``TOKEN_TTL`` (15 minutes) and counts as MFA only when the
authenticator code was checked. Renewal gives a fresh one for the same sign-in, only
while that sign-in has not ended and the person may still see something; refusals are
audited. The password check, its failure limits and audit are the sign-in page's
(gateway/api/signin.py :func:`check_password_sign_in`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from emergency.audit import AuditEvent
from emergency.permissions import Permission
from emergency.sign_ins import CLI, CLIENT_CREDENTIALS, PASSWORD, PASSWORD_TOTP
from gateway.api.signin import check_password_sign_in
from gateway.errors import ApiError
from gateway.identity.caller import client_address, gateway, identity
from gateway.identity.guards import public, requires
from gateway.identity.signin import AMR_MFA, SignInUnavailable, sign_in_state
from gateway.identity.tokens import Identity

router = APIRouter(prefix="/api/v1/auth", tags=["sign-in"])

TOKEN_TTL = 15 * 60


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    code: str | None = Field(default=None, max_length=16, description="the 6-digit code from the authenticator")


def _answer(token: str, sign_in: str, mfa: bool) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL,
        "sign_in": sign_in,
        "mfa": mfa,
        "renew": "/api/v1/auth/token/renew",
    }


@router.post("/token", dependencies=[Depends(public("a bearer token from username, password and authenticator code"))])
def token(body: TokenBody, request: Request) -> dict[str, Any]:
    """A bearer token living 15 minutes, for players and scripts a person runs; it opens
    video only when the authenticator code was checked."""
    gw = gateway(request)
    checked = check_password_sign_in(request, body.username, body.password, body.code, PASSWORD_TOTP)
    mfa = checked.amr == AMR_MFA
    method = PASSWORD_TOTP if mfa else PASSWORD
    record = gw.sign_ins.open(checked.account.id, method=method, mfa=mfa, ttl=TOKEN_TTL)
    issued, jti = gw.tokens.issue(checked.account.id, ttl=TOKEN_TTL, amr=checked.amr, sign_in=record)
    gw.audit.append(
        AuditEvent.AUTH_LOGIN,
        actor_id=checked.account.id,
        object=f"account:{checked.account.id}",
        source=checked.source,
        reason="bearer token from password and authenticator code"
        if mfa
        else "bearer token from password only (no second factor)",
        details={
            "amr": list(checked.amr),
            "token_id": jti,
            "sign_in": record.id,
            "method": method,
            "ttl_seconds": TOKEN_TTL,
            **({"limit": checked.passed} if checked.passed else {}),
        },
    )
    try:
        checked.succeeded(sign_in_state(request))
    except SignInUnavailable:
        pass  # the token stands; the address is remembered next time
    return _answer(issued, record.id, mfa)


@router.post("/token/renew", dependencies=[Depends(requires(Permission.SIGN_IN))])
def renew(request: Request, ident: Annotated[Identity, Depends(identity)]) -> dict[str, Any]:
    """A fresh 15-minute token for the caller's sign-in, while it has not ended and the
    caller may still see something. Send the current token as the bearer."""
    gw = gateway(request)
    who = ident.actor

    def refuse(status: int, detail: str) -> ApiError:
        gw.audit.append(
            AuditEvent.AUTH_TOKEN_RENEWED,
            actor=who,
            object=f"sign_in:{ident.sign_in}",
            outcome="denied",
            source=client_address(request),
            reason=detail,
        )
        return ApiError(status, "forbidden" if status == 403 else "bad_request", detail)

    if ident.web_session is not None:
        raise refuse(400, "a signed-in page renews itself; send the token from /api/v1/auth/token as the bearer")
    if ident.method in (CLI, CLIENT_CREDENTIALS) or not ident.sign_in:
        raise refuse(403, "only a token from /api/v1/auth/token (or another person's sign-in) can be renewed")
    if not gw.emergencies.visible_cameras(who):
        raise refuse(403, "nothing is visible to you any more, so the token is not renewed; sign in again when needed")
    record = gw.sign_ins.renew(ident.sign_in, TOKEN_TTL)
    if record is None:
        raise refuse(403, "the sign-in has ended; sign in again")
    gw.tokens.forget(record.id)
    raw = request.headers.get("authorization", "").partition(" ")[2].strip()
    amr = tuple(str(a) for a in gw.tokens.claims(raw).get("amr") or ())
    issued, jti = gw.tokens.issue(who.id, ttl=TOKEN_TTL, amr=amr, sign_in=record)
    gw.audit.append(
        AuditEvent.AUTH_TOKEN_RENEWED,
        actor=who,
        object=f"sign_in:{record.id}",
        source=client_address(request),
        reason="renewed while the person may still see cameras",
        details={"token_id": jti, "sign_in": record.id, "expires": record.expires.isoformat()},
    )
    return _answer(issued, record.id, record.mfa)
