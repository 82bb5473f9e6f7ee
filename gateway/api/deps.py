"""Request dependencies: the gateway, the caller, and the caller's address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.permissions import Permission, may

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
    """A person's identity, for a handler whose route guard (gateway/guards.py) let it in.
    A records system's token is good for the records endpoints only, so it is refused here
    too, should a route ever forget its guard."""
    if not may(ident.actor, Permission.SIGN_IN):
        gateway(request).audit.append(
            AuditEvent.PERMISSION_DENIED,
            actor=ident.actor,
            object=f"http:{request.method} {request.url.path}",
            outcome="denied",
            source=client_address(request),
            reason="records clients may only post records",
        )
        raise ApiError(
            403, "forbidden", "a records client may only use POST /api/v1/records/{threats|restraints|reports}"
        )
    return ident.actor


GatewayDep = Annotated[Gateway, Depends(gateway)]
ActorDep = Annotated[Actor, Depends(actor)]
SourceDep = Annotated[str | None, Depends(client_address)]
