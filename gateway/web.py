"""The pages: templates and static files from ``web/``, served behind the sign-in.

Pages are thin HTML shells; their scripts read the JSON API with the session cookie,
so a page shows exactly what the API would let its user see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import web as web_package
from emergency.disclosure import REDISCLOSURE_NOTICE
from emergency.site import Role

from .auth import Identity
from .signin import CSRF_HEADER, CSRF_VALUE, page_identity, sign_in_state

WEB_DIR = Path(web_package.__file__).resolve().parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

ROLE_LABELS = {
    Role.DISTRICT_ADMIN: "District administrator",
    Role.BUILDING_ADMIN: "Building administrator",
    Role.DISPATCHER: "Dispatcher",
    Role.OFFICER: "Officer",
    Role.AUDITOR: "Auditor",
}

HOME = {
    Role.AUDITOR: "/audit",
    Role.OFFICER: "/view",
    Role.DISTRICT_ADMIN: "/admin",
    Role.BUILDING_ADMIN: "/admin",
    Role.DISPATCHER: "/dispatch",
}

# page -> (title, roles allowed)
PAGES: dict[str, tuple[str, frozenset[Role]]] = {
    "admin": ("Emergency panel", frozenset({Role.DISTRICT_ADMIN, Role.BUILDING_ADMIN})),
    "view": ("Live cameras", frozenset({Role.OFFICER})),
    "dispatch": ("Dispatch", frozenset({Role.DISPATCHER})),
    "audit": ("Audit", frozenset({Role.AUDITOR, Role.DISTRICT_ADMIN})),
}


def _with_headers(response: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {"csrf_header": CSRF_HEADER, "csrf_value": CSRF_VALUE}
    return _with_headers(templates.TemplateResponse(request, template, {**base, **context}, status_code=status))


def _user(request: Request, ident: Identity) -> dict[str, Any]:
    gw = request.app.state.gateway
    account = gw.config.site.accounts[ident.actor.id]
    agency = gw.config.site.agencies.get(ident.actor.agency or "")
    return {
        "id": ident.actor.id,
        "name": account.name,
        "role": str(ident.actor.role),
        "role_label": ROLE_LABELS.get(ident.actor.role, str(ident.actor.role)),
        "agency": agency.name if agency else None,
        "mfa": ident.actor.mfa,
        "home": HOME.get(ident.actor.role, "/"),
    }


def _to_signin(request: Request, locked: bool) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/signin?next={quote(target, safe='')}" + ("&locked=1" if locked else "")
    return _with_headers(RedirectResponse(url, status_code=303))


def _page(request: Request, page: str, template: str, extra: dict[str, Any] | None = None) -> Response:
    ident, locked = page_identity(request)
    if ident is None:
        return _to_signin(request, locked)
    title, roles = PAGES[page]
    user = _user(request, ident)
    context = {"user": user, "title": title, "page": page,
               "idle_seconds": sign_in_state(request).sessions.idle_seconds, **(extra or {})}
    if ident.actor.role not in roles:
        allowed = ", ".join(sorted(ROLE_LABELS[r].lower() + "s" for r in roles))
        return _render(request, "forbidden.html", {**context, "allowed": allowed}, status=403)
    return _render(request, template, context)


def _buildings(request: Request, ident: Identity) -> list[dict[str, str]]:
    """The buildings this person acts for (a building administrator: their own), as plain data."""
    site = request.app.state.gateway.config.site
    account = site.accounts.get(ident.actor.id)
    own = set(account.buildings) if account is not None and account.buildings else None
    return [{"id": b.id, "name": b.name} for b in site.buildings.values() if own is None or b.id in own]


def _page_data(request: Request) -> dict[str, Any]:
    ident, _ = page_identity(request)
    return {"buildings": _buildings(request, ident) if ident is not None else []}


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never an absolute or protocol-relative URL."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        ident, locked = page_identity(request)
        if ident is None:
            return _to_signin(request, locked)
        return _with_headers(RedirectResponse(HOME.get(ident.actor.role, "/signin"), status_code=303))

    @app.get("/signin", include_in_schema=False)
    def signin_page(request: Request, next: str | None = None, locked: bool = False,
                    signed_out: bool = False) -> Response:
        target = _safe_next(next)
        ident, _ = page_identity(request)
        if ident is not None:
            return _with_headers(RedirectResponse(target if target != "/signin" else "/", status_code=303))
        notice = None
        if locked:
            notice = "You were signed out after 30 minutes without activity. Sign in again to continue."
        elif signed_out:
            notice = "You are signed out."
        return _render(request, "signin.html", {"title": "Sign in", "next": target, "notice": notice, "user": None})

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request) -> Response:
        return _page(request, "admin", "admin.html", {"page_data": _page_data(request)})

    @app.get("/view", include_in_schema=False)
    def view_page(request: Request) -> Response:
        return _page(request, "view", "viewer.html",
                     {"page_data": _page_data(request), "redisclosure_notice": REDISCLOSURE_NOTICE})

    @app.get("/dispatch", include_in_schema=False)
    def dispatch_page(request: Request) -> Response:
        return _page(request, "dispatch", "placeholder.html")

    @app.get("/audit", include_in_schema=False)
    def audit_page(request: Request) -> Response:
        return _page(request, "audit", "audit_list.html")

    @app.get("/audit/report", include_in_schema=False)
    def audit_report_page(request: Request) -> Response:
        return _page(request, "audit", "audit_report.html", {"title": "Monthly access report"})

    @app.get("/audit/emergencies/{emergency_id}", include_in_schema=False)
    def audit_incident_page(request: Request, emergency_id: str) -> Response:
        return _page(request, "audit", "audit_incident.html",
                     {"title": "Incident record", "emergency_id": emergency_id})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)
