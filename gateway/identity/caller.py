"""Who is calling: a bearer token or the pages' session cookie, and from where.

The route guards (gateway/identity/guards.py) start from :func:`identity`; a bad or
missing credential is answered 401 with ``WWW-Authenticate: Bearer`` and a bad token is
audited as ``auth.failure`` (the first of its source in a minute; the rest are counted
into one ``auth.failures`` entry: gateway/identity/failures.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from gateway.errors import ApiError
from gateway.identity.failures import audit_bad_credential
from gateway.identity.proxies import client_address
from gateway.identity.signin import SESSION_COOKIE, cookie_identity
from gateway.identity.tokens import AuthError, Identity

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["client_address", "gateway", "identity"]


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def identity(request: Request) -> Identity:
    gw = gateway(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:  # the web pages: session cookie, idle lock and CSRF check (gateway/identity/signin.py)
            return cookie_identity(request, cookie)
        raise ApiError(401, "unauthorized", "sign in first: send 'Authorization: Bearer <token>'", _CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <token>'", _CHALLENGE)
    try:
        return gw.tokens.authenticate(token.strip())
    except AuthError as exc:
        audit_bad_credential(request, kind="bearer token", reason=str(exc))
        raise ApiError(401, "unauthorized", f"{exc}; ask for a new token", _CHALLENGE) from None
