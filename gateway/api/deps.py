"""Request dependencies for handlers: the gateway, the person calling, and their address
(who is calling at all is gateway/identity/caller.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.permissions import Permission, may
from gateway.errors import ApiError
from gateway.identity.caller import client_address, gateway, identity
from gateway.identity.tokens import Identity
from gateway.runtime import Gateway


def actor(request: Request, ident: Annotated[Identity, Depends(identity)]) -> Actor:
    """A person's identity, for a handler whose route guard (gateway/identity/guards.py) let it in.
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
