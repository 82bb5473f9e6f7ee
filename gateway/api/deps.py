"""Request dependencies: the gateway, the caller, and the caller's address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.site import Role

from ..auth import AuthError, Identity
from ..errors import ApiError
from ..runtime import Gateway
from ..signin import SESSION_COOKIE, cookie_identity

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def identity(request: Request) -> Identity:
    gw = gateway(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:  # the web pages: session cookie, idle lock and CSRF check (gateway/signin.py)
            return cookie_identity(request, cookie)
        raise ApiError(401, "unauthorized", "sign in first: send 'Authorization: Bearer <token>'", _CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <token>'", _CHALLENGE)
    try:
        return gw.tokens.authenticate(token.strip())
    except AuthError as exc:
        gw.metrics.auth_failures.inc()
        gw.audit.append(
            AuditEvent.AUTH_FAILURE,
            actor_id="unknown",
            object=f"http:{request.method} {request.url.path}",
            outcome="denied",
            source=client_address(request),
            reason=str(exc),
        )
        raise ApiError(401, "unauthorized", f"{exc}; ask for a new token", _CHALLENGE) from None


def actor(request: Request, ident: Annotated[Identity, Depends(identity)]) -> Actor:
    """A person's identity. A records system's token (role records_client) is good for
    the records endpoints only (gateway/api/records.py), so it is refused here."""
    if ident.actor.role is Role.RECORDS_CLIENT:
        gateway(request).audit.append(
            AuditEvent.PERMISSION_DENIED, actor=ident.actor, object=f"http:{request.method} {request.url.path}",
            outcome="denied", source=client_address(request), reason="records clients may only post records",
        )
        raise ApiError(403, "forbidden", "a records client may only use POST /api/v1/records/{threats|restraints|reports}")
    return ident.actor


def require_role(request: Request, who: Actor, *roles: Role) -> None:
    """Refuse, and audit the refusal, unless the caller holds one of ``roles``."""
    if who.role in roles:
        return
    gw = gateway(request)
    gw.audit.append(
        AuditEvent.PERMISSION_DENIED,
        actor=who,
        object=f"http:{request.method} {request.url.path}",
        outcome="denied",
        source=client_address(request),
        reason=f"role {who.role} may not do this",
    )
    raise ApiError(403, "forbidden", f"your role ({who.role}) may not do this")


GatewayDep = Annotated[Gateway, Depends(gateway)]
ActorDep = Annotated[Actor, Depends(actor)]
SourceDep = Annotated[str | None, Depends(client_address)]
