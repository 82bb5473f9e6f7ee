"""Route guards: every route and page says who may call it, where it is defined.

In the spirit of Starlette's ``requires``, a guard is a FastAPI dependency, declared on
the route::

    @router.get("/audit/verify", dependencies=[Depends(requires(Permission.READ_AUDIT))])

or, when the handler needs the caller, as a parameter
(``ident: Annotated[Identity, Depends(requires(Permission.POST_THREAT_RECORDS))]``).

Guards of people and records systems ask ``emergency.permissions.may`` (the one matrix);
the others say what proves the caller instead:

* ``requires(permission)``: a bearer token or the pages' session cookie (401 with
  ``WWW-Authenticate: Bearer`` without one), then the permission (403, audited as
  ``permission.denied``). A records-system permission also needs its OAuth2 scope.
* ``page(permission)``: a page. An anonymous visitor is sent to /signin (303); a signed-in
  person without the permission sees forbidden.html (403). gateway/api/pages.py renders both.
* ``public(why)``, ``client_credentials``, ``node_key(check)``, ``signed_webhook(check)``:
  no person; the last two wrap the module's own check (relay signature, button HMAC).

``python -m gateway.identity.guards --markdown`` writes docs/permissions.md from the matrix and
the app's router.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.permissions import (
    BUILDING_SCOPED,
    DESCRIPTIONS,
    IN_OWN_BUILDINGS,
    MATRIX,
    ROLE_LABELS,
    SCOPES,
    Permission,
    may,
)
from emergency.site import Role
from gateway.errors import ApiError
from gateway.identity.caller import client_address, gateway, identity
from gateway.identity.tokens import Identity

F = TypeVar("F", bound=Callable[..., Any])


class Kind(StrEnum):
    PUBLIC = "public"
    PERMISSION = "permission"
    PAGE = "page"
    CLIENT_CREDENTIALS = "client credentials"
    NODE_KEY = "node key"
    SIGNED_WEBHOOK = "signed webhook"


@dataclass(frozen=True)
class Guard:
    kind: Kind
    permission: Permission | None = None
    note: str = ""

    def describe(self) -> str:
        if self.permission is None:
            return f"{self.kind}: {self.note}" if self.note else str(self.kind)
        scope = SCOPES.get(self.permission)
        text = f"`{self.permission}`" + (f" + scope `{scope}`" if scope else "")
        return f"page, {text}" if self.kind is Kind.PAGE else text


def _tag(fn: F, guard: Guard) -> F:
    fn.__guard__ = guard  # type: ignore[attr-defined]
    return fn


def guard_of(call: object) -> Guard | None:
    found = getattr(call, "__guard__", None)
    return found if isinstance(found, Guard) else None


# ------------------------------------------------------------------------------ refusals


def _audit_refusal(request: Request, who: Actor, reason: str) -> None:
    gateway(request).audit.append(
        AuditEvent.PERMISSION_DENIED,
        actor=who,
        object=f"http:{request.method} {request.url.path}",
        outcome="denied",
        source=client_address(request),
        reason=reason,
    )


def requires(permission: Permission, *, detail: str | None = None) -> Callable[..., Identity]:
    """A guard for an API route: the caller must hold ``permission`` somewhere (the handler
    or the domain then checks the building at hand). ``detail`` replaces the 403 text."""
    scope = SCOPES.get(permission)

    def check(request: Request, ident: Identity = Depends(identity)) -> Identity:
        who = ident.actor
        if not may(who, permission):
            if scope is not None:
                _audit_refusal(request, who, f"role {who.role} may not post records")
                raise ApiError(
                    403,
                    "forbidden",
                    f"only a records system's OAuth2 client may post records; your role ({who.role}) may not",
                )
            if not may(who, Permission.SIGN_IN):
                _audit_refusal(request, who, "records clients may only post records")
                raise ApiError(
                    403, "forbidden", "a records client may only use POST /api/v1/records/{threats|restraints|reports}"
                )
            _audit_refusal(request, who, f"role {who.role} may not do this ({permission})")
            raise ApiError(403, "forbidden", detail or f"your role ({who.role}) may not do this")
        if scope is not None:
            if scope not in ident.scopes:
                _audit_refusal(request, who, f"token lacks scope {scope}")
                raise ApiError(
                    403,
                    "insufficient_scope",
                    f"this endpoint needs scope {scope}; the token has "
                    f"{' '.join(sorted(ident.scopes)) or 'no records scope'}",
                    {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
                )
            request.state.records_client = who.id
        return ident

    return _tag(check, Guard(Kind.PERMISSION, permission))


def require_in_building(request: Request, who: Actor, permission: Permission, building: str) -> None:
    """For a handler that learns the building only from the request: refuse and audit
    like a guard unless the caller holds ``permission`` for ``building``."""
    if may(who, permission, building):
        return
    _audit_refusal(request, who, f"role {who.role} may not do this ({permission}) for {building}")
    raise ApiError(403, "forbidden", f"your role ({who.role}) may not do this for building {building!r}")


class PageRefused(Exception):
    """Raised by a page guard; gateway/api/pages.py answers it (303 to /signin, or 403 forbidden.html)."""

    def __init__(self, permission: Permission, ident: Identity | None, locked: bool = False) -> None:
        super().__init__(permission)
        self.permission, self.ident, self.locked = permission, ident, locked


def page(permission: Permission) -> Callable[[Request], Identity]:
    """A guard for a page: the session cookie, then ``permission``."""

    from gateway.identity.signin import page_identity

    def check(request: Request) -> Identity:
        ident, locked = page_identity(request)
        if ident is None:
            raise PageRefused(permission, None, locked)
        if not may(ident.actor, permission):
            _audit_refusal(request, ident.actor, f"role {ident.actor.role} may not use this page ({permission})")
            raise PageRefused(permission, ident)
        return ident

    return _tag(check, Guard(Kind.PAGE, permission))


def public(why: str) -> Callable[[], None]:
    """No credentials: the route serves anyone (say why)."""

    def check() -> None:
        return None

    return _tag(check, Guard(Kind.PUBLIC, note=why))


def client_credentials(why: str) -> Callable[[], None]:
    """The handler authenticates an OAuth2 client itself (gateway/identity/oauth.py)."""

    def check() -> None:
        return None

    return _tag(check, Guard(Kind.CLIENT_CREDENTIALS, note=why))


def node_key(check: F) -> F:
    """``check`` authenticates another node by the shared relay key (gateway/media/camera_leases.py)."""
    return _tag(check, Guard(Kind.NODE_KEY, note="a request signed with the nodes' shared relay key"))


def signed_webhook(check: F) -> F:
    """``check`` authenticates a hardware button by its HMAC signature (gateway/identity/signing.py)."""
    return _tag(check, Guard(Kind.SIGNED_WEBHOOK, note="HMAC-signed body with the button's secret"))


def mount_public(app: FastAPI, path: str, target: Any, *, name: str, why: str) -> None:
    """``app.mount`` for files anyone may fetch (the pages' scripts and styles)."""
    app.mount(path, target, name=name)
    _tag(app.router.routes[-1], Guard(Kind.PUBLIC, note=why))


# ------------------------------------------------------------------------------ reading


def _guards_in(dependant: Any) -> Iterator[Guard]:
    for dep in dependant.dependencies:
        found = guard_of(dep.call)
        if found is not None:
            yield found
        yield from _guards_in(dep)


def route_guards(route: BaseRoute) -> list[Guard]:
    """The guards a route declares (exactly one for every route of the app)."""
    if isinstance(route, APIRoute):
        return list(_guards_in(route.dependant))
    found = guard_of(route)
    return [found] if found is not None else []


def routes(app: FastAPI) -> list[tuple[str, str, BaseRoute]]:
    """(methods, path, route) for every route of the app, in a stable order."""
    out = []
    for path, found_methods, route in _flattened(app):
        methods = sorted(m for m in found_methods or ["*"] if m != "HEAD")
        out.append((",".join(methods), path, route))
    return sorted(out, key=lambda r: (r[1], r[0]))


def _flattened(app: FastAPI) -> Iterator[tuple[str, set[str] | None, BaseRoute]]:
    """FastAPI 0.165 keeps included routers as one entry each; older versions copy their routes."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        for route in app.routes:
            yield getattr(route, "path", ""), getattr(route, "methods", None), route
        return
    for context in iter_route_contexts(app.routes):
        yield context.path or "", context.methods, context.original_route


def declare_documentation(app: FastAPI) -> None:
    """FastAPI's own routes (/openapi.json, /docs, /redoc) have no dependencies: tag them."""
    own = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    for route in app.routes:
        if not isinstance(route, APIRoute) and getattr(route, "path", None) in own:
            _tag(route, Guard(Kind.PUBLIC, note="the API's own documentation"))


def describe(route: BaseRoute) -> str:
    found = route_guards(route)
    return " and ".join(g.describe() for g in found) if found else "**none declared**"


_CALLERS = {
    Kind.PUBLIC: "anyone",
    Kind.CLIENT_CREDENTIALS: "a records system (its client secret)",
    Kind.NODE_KEY: "another Sightline node",
    Kind.SIGNED_WEBHOOK: "a configured panic button",
}


def markdown(app: FastAPI) -> str:
    """docs/permissions.md: the matrix, then every route with its guard."""
    roles = list(Role)
    lines = [
        "# Permissions",
        "",
        "Generated by `python -m gateway.identity.guards --markdown > docs/permissions.md` from",
        "`emergency/permissions.py` (the matrix) and the app's router; a test fails when this file is",
        "out of date. Do not edit it by hand.",
        "",
        "## Roles and permissions",
        "",
        "✓ the role holds the permission; ▣ only in the buildings it covers. A designee (`designee_for`)",
        "also holds the permissions of the account it stands in for, in that account's buildings.",
        "",
        "| Permission | " + " | ".join(ROLE_LABELS[r] for r in roles) + " | What it allows |",
        "|---|" + "---|" * len(roles) + "---|",
    ]
    for p in Permission:
        cells = []
        for role in roles:
            held = p in MATRIX[role]
            scoped = held and p in BUILDING_SCOPED and role in IN_OWN_BUILDINGS
            cells.append("▣" if scoped else "✓" if held else "")
        lines.append(f"| `{p}` | " + " | ".join(cells) + f" | {DESCRIPTIONS[p]} |")
    lines += ["", "## Routes and their guards", "", "| Method | Path | Guard | Who |", "|---|---|---|---|"]
    for methods, path, route in routes(app):
        found = route_guards(route)
        needed = [g.permission for g in found if g.permission is not None]
        if needed:
            who = ", ".join(ROLE_LABELS[r] for r in roles if all(n in MATRIX[r] for n in needed))
        else:
            who = ", ".join(_CALLERS[g.kind] for g in found) or "anyone"
        lines.append(f"| {methods or '*'} | `{path}` | {describe(route)} | {who} |")
    lines.append("")
    return "\n".join(lines)


def _app() -> FastAPI:
    from gateway.app import install_routes

    app = FastAPI()
    install_routes(app)
    declare_documentation(app)
    return app


def main(argv: list[str]) -> int:
    if argv != ["--markdown"]:
        print("usage: python -m gateway.identity.guards --markdown > docs/permissions.md", file=sys.stderr)
        return 2
    sys.stdout.write(markdown(_app()))
    return 0


if __name__ == "__main__":
    from gateway.identity import guards  # the routes are tagged with this module's Guard, not __main__'s

    raise SystemExit(guards.main(sys.argv[1:]))
