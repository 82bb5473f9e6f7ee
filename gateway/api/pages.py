"""The pages: templates and static files from ``web/``, served behind the sign-in.

Pages are thin HTML shells; their scripts read the JSON API with the session cookie,
so a page shows exactly what the API would let its user see.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import web as web_package
from emergency.disclosure import REDISCLOSURE_NOTICE
from emergency.guest_passes import AGENCY_PREFIX, is_guest_agency
from emergency.model import Action, IncidentType
from emergency.permissions import ROLE_LABELS, Permission, home_page, may, role_holds, roles_with
from emergency.policy import ALL_ZONES
from emergency.requests import MAX_REASON
from emergency.scope import shared_cameras
from gateway.errors import error_response
from gateway.identity.guards import PageRefused, mount_public, page, public
from gateway.identity.oidc import signin_url
from gateway.identity.signin import CSRF_HEADER, CSRF_VALUE, SignInUnavailable, page_identity, sign_in_state
from gateway.identity.tokens import Identity

WEB_DIR = Path(web_package.__file__).resolve().parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))

# Pages are never cached; the security headers every response carries are set in one
# place, gateway/security_headers.py.
PAGE_HEADERS = {"Cache-Control": "no-store"}

# page -> (title, the permission its guard asks for)
PAGES: dict[str, tuple[str, Permission]] = {
    "admin": ("Emergency panel", Permission.USE_ADMIN_PAGE),
    "view": ("Live cameras", Permission.USE_VIEWER_PAGE),
    "dispatch": ("Dispatch", Permission.USE_DISPATCH_PAGE),
    "audit": ("Audit", Permission.USE_AUDIT_PAGES),
}


def _with_headers(response: Response) -> Response:
    for k, v in PAGE_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {"csrf_header": CSRF_HEADER, "csrf_value": CSRF_VALUE}
    return _with_headers(templates.TemplateResponse(request, template, {**base, **context}, status_code=status))


def _mfa_help(request: Request, ident: Identity) -> str:
    """Why video is closed to someone signed in without a second factor, and what to do."""
    gw = request.app.state.gateway
    provider = gw.config.oidc.get(ident.actor.id.partition(":")[0]) if ":" in ident.actor.id else None
    if provider is not None:
        return (
            f"Your agency's sign-in did not prove a second factor, and video needs one. Ask "
            f"{provider.owner_name} IT to require a second factor (an authenticator app or a security "
            "key) when you sign in to Sightline, then sign out and sign in again."
        )
    return (
        "You signed in without a code from your authenticator app. Video needs a second factor: "
        "sign out and sign in again with your 6-digit code."
    )


def _user(request: Request, ident: Identity) -> dict[str, Any]:
    gw = request.app.state.gateway
    account = gw.tokens.directory.get(ident.actor.id)
    agency = gw.config.site.agencies.get(ident.actor.agency or "")
    return {
        "mfa_help": "" if ident.actor.mfa else _mfa_help(request, ident),
        "id": ident.actor.id,
        "name": account.name if account else ident.actor.id,
        "role": str(ident.actor.role),
        "role_label": ROLE_LABELS.get(ident.actor.role, str(ident.actor.role)),
        "agency": agency.name if agency else _guest_label(gw, ident.actor.agency),
        "mfa": ident.actor.mfa,
        "home": home_page(ident.actor) or "/",
    }


def _guest_label(gw: Any, agency: str | None) -> str | None:
    """A mutual-aid guest's agency as the pages show it: "mutual aid: <agency>"."""
    if not is_guest_agency(agency):
        return None
    p = gw.guest_passes.get(str(agency).removeprefix(AGENCY_PREFIX))
    return p.label if p is not None else None


def _to_signin(request: Request, locked: bool) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/signin?next={quote(target, safe='')}" + ("&locked=1" if locked else "")
    return _with_headers(RedirectResponse(url, status_code=303))


def _context(request: Request, ident: Identity, name: str) -> dict[str, Any]:
    return {
        "user": _user(request, ident),
        "title": PAGES[name][0],
        "page": name,
        "idle_seconds": sign_in_state(request).sessions.idle_seconds,
    }


def _page(request: Request, ident: Identity, name: str, template: str, extra: dict[str, Any] | None = None) -> Response:
    """A page its guard (gateway/identity/guards.py ``page``) let the person see."""
    return _render(request, template, {**_context(request, ident, name), **(extra or {})})


def _refused(request: Request, exc: PageRefused) -> Response:
    """A page guard's refusal: anonymous to /signin (303), the wrong person forbidden.html (403)."""
    if exc.ident is None:
        return _to_signin(request, exc.locked)
    name = next((n for n, (_, permission) in PAGES.items() if permission is exc.permission), None)
    if name is None:  # "/" refuses only who cannot sign in at all
        return _to_signin(request, False)
    allowed = ", ".join(sorted(ROLE_LABELS[r].lower() + "s" for r in roles_with(exc.permission)))
    return _render(request, "forbidden.html", {**_context(request, exc.ident, name), "allowed": allowed}, status=403)


def _buildings(request: Request, ident: Identity) -> list[dict[str, str]]:
    """The buildings this person acts for (a building administrator: their own), as plain data."""
    gw = request.app.state.gateway
    site = gw.config.site
    account = gw.tokens.directory.get(ident.actor.id)
    own = set(account.buildings) if account is not None and account.buildings else None
    return [{"id": b.id, "name": b.name} for b in site.buildings.values() if own is None or b.id in own]


def _page_data(request: Request, ident: Identity) -> dict[str, Any]:
    return {"buildings": _buildings(request, ident)}


def _admin_data(request: Request, ident: Identity) -> dict[str, Any]:
    """The admin panel names people, agencies and call types in plain words, not ids."""
    site = request.app.state.gateway.config.site
    return {
        **_page_data(request, ident),
        "people": {a.id: a.name for a in site.accounts.values() if role_holds(a.role, Permission.SIGN_IN)},
        "agencies": {a.id: a.name for a in site.agencies.values()},
        "call_types": {c["id"]: c["label"] for c in _call_types(site.policy.auto_approve_calls)},
        "may_revoke": may(ident.actor, Permission.REVOKE_ACCESS),
    }


# The dispatcher's page. The API takes any call type (1-64 characters); these are the ones
# the page offers, in plain words. The policy's auto-approved call types are added when
# missing, so each one the district approves by itself can be chosen.
CALL_TYPES: tuple[tuple[str, str], ...] = (
    ("911_call_from_school", "911 call from inside the school"),
    ("911_call_about_school", "911 call about the school, from outside it"),
    ("officer_request", "An officer at the scene asks for video"),
    ("alarm_or_panic", "Alarm or panic alert from the school"),
    ("other", "Something else (say what in the reason)"),
)

ACTION_HINTS = {
    Action.LOCKDOWN: "Locks, lights, out of sight. Threat inside or close.",
    Action.SECURE: "Get inside, lock outside doors. Threat outside.",
    Action.EVACUATE: "Everyone leaves to a named place.",
    Action.HOLD: "Stay in rooms, clear the halls.",
    Action.SHELTER: "Shelter from a hazard (weather, hazmat).",
}
ACTION_ORDER = (Action.LOCKDOWN, Action.SECURE, Action.EVACUATE, Action.HOLD, Action.SHELTER)

INCIDENT_LABELS = {
    IncidentType.OTHER: "Other / not known yet",
    IncidentType.ARMED_INTRUDER: "Armed intruder",
    IncidentType.BOMB_THREAT: "Bomb threat",
    IncidentType.FIRE: "Fire",
    IncidentType.SEVERE_WEATHER: "Severe weather",
    IncidentType.HAZMAT: "Hazardous material",
    IncidentType.MEDICAL: "Medical",
}


def _plain(code: str) -> str:
    text = code.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _call_types(auto: Collection[str]) -> list[dict[str, Any]]:
    """CALL_TYPES in plain words, each marked if the policy approves it by itself, and the
    policy's own auto-approved types added when CALL_TYPES lacks them."""
    known = dict(CALL_TYPES)
    return [{"id": cid, "label": label, "auto": cid in auto} for cid, label in CALL_TYPES] + [
        {"id": cid, "label": _plain(cid), "auto": True} for cid in sorted(auto) if cid not in known
    ]


def _dispatch_data(request: Request, ident: Identity) -> dict[str, Any]:
    """What the dispatcher's form offers and what its request list needs to name people
    and places: all plain data from the site file and its policy, nothing stored in web/."""
    if not may(ident.actor, Permission.REQUEST_ACCESS):
        return {}
    site = request.app.state.gateway.config.site
    policy = site.policy
    call_types = _call_types(policy.auto_approve_calls)
    buildings = _buildings(request, ident)

    def shares(action: Action) -> str:
        zones = policy.shared_zones.get(action, frozenset())
        tags = policy.shared_tags.get(action, frozenset())
        if ALL_ZONES in zones:
            return "every camera the district's plan allows"
        if not zones and not tags:
            return "no cameras"
        return "cameras covering " + ", ".join(sorted(z.replace("-", " ") for z in zones | tags))

    actions = [{"id": str(a), "hint": ACTION_HINTS[a], "shares": shares(a)} for a in ACTION_ORDER]
    counts = {b["id"]: {str(a): len(shared_cameras(site, b["id"], a)) for a in ACTION_ORDER} for b in buildings}
    agencies = [a.name for a in site.agencies.values() if a.agreement]
    own = site.agencies.get(ident.actor.agency or "")
    return {
        "buildings": buildings,
        "call_types": call_types,
        "actions": actions,
        "default_action": str(Action.LOCKDOWN),
        "incident_types": [
            {"id": str(i), "label": INCIDENT_LABELS.get(i, _plain(str(i)))}
            for i in sorted(IncidentType, key=lambda i: i is not IncidentType.OTHER)
        ],
        "shared_counts": counts,
        "agencies": agencies,
        "own_agency_outside": bool(own and not own.agreement),
        "timebox_minutes": int(policy.timebox.total_seconds() // 60),
        # who may decide a request, so the list can name them rather than show an account id
        "deciders": {
            a.id: a.name for a in site.accounts.values() if role_holds(a.role, Permission.DECIDE_ACCESS_REQUESTS)
        },
        "reason_max": MAX_REASON,
    }


def render_page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page outside the guarded ones (the OpenID Connect sign-in's answers), with the headers."""
    return _render(request, template, context, status)


def safe_next(value: str | None) -> str:
    return _safe_next(value)


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never an absolute or protocol-relative URL."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def install(app: FastAPI) -> None:
    mount_public(
        app,
        "/static",
        StaticFiles(directory=str(WEB_DIR / "static")),
        name="static",
        why="the pages' scripts, styles and images",
    )
    app.add_exception_handler(PageRefused, _refused)  # type: ignore[arg-type]  # Starlette types it for Exception

    @app.exception_handler(SignInUnavailable)
    async def sign_in_down(request: Request, exc: SignInUnavailable) -> Response:
        """The shared sign-in store is down: pages say so in words; the API keeps its JSON."""
        if request.url.path.startswith(("/api/", "/whep")):
            return error_response(exc.status, exc.code, exc.detail, exc.headers)
        page = _render(
            request,
            "unavailable.html",
            {
                "title": "Sign-in unavailable",
                "user": None,
                "detail": exc.detail[:1].upper() + exc.detail[1:],
                "again": request.url.path,
            },
            status=503,
        )
        page.headers.update(exc.headers or {})
        return page

    @app.get("/", include_in_schema=False)
    def home(ident: Annotated[Identity, Depends(page(Permission.SIGN_IN))]) -> Response:
        return _with_headers(RedirectResponse(home_page(ident.actor) or "/signin", status_code=303))

    @app.get("/signin", include_in_schema=False, dependencies=[Depends(public("the sign-in form"))])
    def signin_page(
        request: Request,
        next: str | None = None,
        locked: bool = False,
        signed_out: bool = False,
        guest_ended: bool = False,
    ) -> Response:
        target = _safe_next(next)
        ident, _ = page_identity(request)
        if ident is not None:
            return _with_headers(RedirectResponse(target if target != "/signin" else "/", status_code=303))
        notice = None
        if guest_ended:
            notice = "Your mutual-aid access has ended with the emergency. Ask the dispatcher if you need a new pass."
        elif locked:
            notice = "You were signed out after 30 minutes without activity. Sign in again to continue."
        elif signed_out:
            notice = "You are signed out."
        providers = [
            {"name": p.owner_name, "url": signin_url(owner, target)}
            for owner, p in request.app.state.gateway.config.oidc.items()
        ]
        return _render(
            request,
            "signin.html",
            {"title": "Sign in", "next": target, "notice": notice, "user": None, "providers": providers},
        )

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request, ident: Annotated[Identity, Depends(page(Permission.USE_ADMIN_PAGE))]) -> Response:
        return _page(request, ident, "admin", "admin.html", {"page_data": _admin_data(request, ident)})

    @app.get("/view", include_in_schema=False)
    def view_page(request: Request, ident: Annotated[Identity, Depends(page(Permission.USE_VIEWER_PAGE))]) -> Response:
        return _page(
            request,
            ident,
            "view",
            "viewer.html",
            {"page_data": _page_data(request, ident), "redisclosure_notice": REDISCLOSURE_NOTICE},
        )

    @app.get("/dispatch", include_in_schema=False)
    def dispatch_page(
        request: Request, ident: Annotated[Identity, Depends(page(Permission.USE_DISPATCH_PAGE))]
    ) -> Response:
        data = _dispatch_data(request, ident)
        return _page(request, ident, "dispatch", "dispatch.html", {"page_data": data, "form": data})

    @app.get("/audit", include_in_schema=False)
    def audit_page(request: Request, ident: Annotated[Identity, Depends(page(Permission.USE_AUDIT_PAGES))]) -> Response:
        return _page(request, ident, "audit", "audit_list.html")

    @app.get("/audit/report", include_in_schema=False)
    def audit_report_page(
        request: Request, ident: Annotated[Identity, Depends(page(Permission.USE_AUDIT_PAGES))]
    ) -> Response:
        return _page(request, ident, "audit", "audit_report.html", {"title": "Monthly access report"})

    @app.get("/audit/emergencies/{emergency_id}", include_in_schema=False)
    def audit_incident_page(
        request: Request, emergency_id: str, ident: Annotated[Identity, Depends(page(Permission.USE_AUDIT_PAGES))]
    ) -> Response:
        return _page(
            request, ident, "audit", "audit_incident.html", {"title": "Incident record", "emergency_id": emergency_id}
        )

    @app.get("/favicon.ico", include_in_schema=False, dependencies=[Depends(public("no icon: an empty answer"))])
    def favicon() -> Response:
        return Response(status_code=204)
