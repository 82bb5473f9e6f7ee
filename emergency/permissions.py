"""Who may do what: the one matrix of roles and permissions, and ``may``.

Every capability of the app is a :class:`Permission`; :data:`MATRIX` says which role
holds which. ``may`` is the only place a role is compared: the domain's finer rules
(emergency/authority.py) and the gateway's route guards (gateway/identity/guards.py) both ask it.

Two things widen or narrow a role's permissions:

* **Building scope.** A permission in :data:`BUILDING_SCOPED` is held by a role of
  :data:`IN_OWN_BUILDINGS` (a building administrator) only for the buildings it covers.
  Asked without a building, ``may`` answers whether the actor holds it anywhere (a route
  guard asks so; the handler or the domain then asks for the building at hand).
* **Designees.** An actor that stands in for another account ("or designee",
  :class:`emergency.model.Delegation`) also holds that account's role's permissions, for
  the delegation's buildings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from emergency.model import Actor
from emergency.site import Role

__all__ = [
    "BUILDING_SCOPED",
    "DESCRIPTIONS",
    "HOME_PAGES",
    "IN_OWN_BUILDINGS",
    "AGENCY_DEFAULT_ROLE",
    "provider_roles",
    "MATRIX",
    "Permission",
    "ROLE_LABELS",
    "SCOPES",
    "basis",
    "home_page",
    "may",
    "role_holds",
    "roles_with",
]


class Permission(StrEnum):
    SIGN_IN = "sign_in"
    DECLARE_EMERGENCY = "emergency.declare"
    COMMAND_EMERGENCY = "emergency.command"
    LIST_EMERGENCIES = "emergency.list"
    SEE_THREAT_BASIS = "emergency.threat_basis"
    READ_POLICY = "policy.read"
    REQUEST_ACCESS = "access_request.submit"
    LIST_ACCESS_REQUESTS = "access_request.list"
    DECIDE_ACCESS_REQUESTS = "access_request.decide"
    LIST_CAMERAS = "camera.list"
    SEE_CAMERA_METADATA = "camera.metadata"
    SEE_CAMERA_HEALTH = "camera.health"
    SEE_FLOOR_PLANS = "building.floor_plan"
    WATCH_LIVE = "camera.watch"
    GET_ICE_SERVERS = "webrtc.ice_servers"
    LIST_OWN_GRANTS = "grant.mine"
    LIST_VIEW_SESSIONS = "session.list"
    ISSUE_GUEST_PASS = "guest_pass.issue"
    READ_AUDIT = "audit.view"
    EXPORT_AUDIT = "audit.export"
    READ_DISCLOSURE = "audit.disclosure"
    MONTHLY_REPORT = "report.monthly"
    READ_REPORT_LINKS = "records.reports.read"
    USE_CLIENT_CREDENTIALS = "records.client_credentials"
    POST_THREAT_RECORDS = "records.threats.post"
    POST_RESTRAINT_RECORDS = "records.restraints.post"
    POST_REPORT_RECORDS = "records.reports.post"
    REVOKE_ACCESS = "access.revoke"
    USE_ADMIN_PAGE = "page.admin"
    USE_VIEWER_PAGE = "page.view"
    USE_DISPATCH_PAGE = "page.dispatch"
    USE_AUDIT_PAGES = "page.audit"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.SIGN_IN: "Sign in to the pages and use the API as a person (a records system cannot)",
    Permission.DECLARE_EMERGENCY: "Declare an emergency for a building",
    Permission.COMMAND_EMERGENCY: "Confirm, cancel, change, extend, all-clear and close a building's emergency; "
    "approve another administrator's extension",
    Permission.LIST_EMERGENCIES: "See the list of emergencies and their state",
    Permission.SEE_THREAT_BASIS: "Read the threat text an emergency was declared on",
    Permission.READ_POLICY: "Read the district policy in force (what each action shares, for how long)",
    Permission.REQUEST_ACCESS: "Ask for camera access to a building (a dispatcher's access request)",
    Permission.LIST_ACCESS_REQUESTS: "List access requests: a dispatcher its own, an administrator those of "
    "the buildings it commands, anyone else none",
    Permission.DECIDE_ACCESS_REQUESTS: "Approve or deny a dispatcher's access request for a building",
    Permission.LIST_CAMERAS: "List the cameras one may see right now (the domain decides which)",
    Permission.SEE_CAMERA_METADATA: "See camera names and places of a building without an emergency (no video)",
    Permission.SEE_CAMERA_HEALTH: "See a camera's stream health (frame rate, reconnects)",
    Permission.SEE_FLOOR_PLANS: "See a building's floor plan while one may see one of its cameras",
    Permission.WATCH_LIVE: "Watch live video and snapshots of cameras a live grant shares (with MFA)",
    Permission.GET_ICE_SERVERS: "Get STUN/TURN servers and short-lived TURN credentials for WebRTC",
    Permission.LIST_OWN_GRANTS: "List the grants that share cameras with one's own agency now",
    Permission.LIST_VIEW_SESSIONS: "See who is watching which camera right now",
    Permission.ISSUE_GUEST_PASS: "Give a mutual-aid responder a guest pass (link + PIN) to an active emergency's "
    "cameras, see and end those passes",
    Permission.READ_AUDIT: "Read and verify the audit log",
    Permission.EXPORT_AUDIT: "Export an emergency's auditor packet (JSON, CSV, PDF)",
    Permission.READ_DISCLOSURE: "Read an emergency's disclosure record",
    Permission.MONTHLY_REPORT: "Read the monthly access report",
    Permission.READ_REPORT_LINKS: "Read incident-report and detention-notice links (need to know)",
    Permission.USE_CLIENT_CREDENTIALS: "Obtain a token with OAuth2 client credentials (a records system)",
    Permission.POST_THREAT_RECORDS: "Post threat-assessment case links (scope records:threats)",
    Permission.POST_RESTRAINT_RECORDS: "Post restraint and time-out episode links (scope records:restraints)",
    Permission.POST_REPORT_RECORDS: "Post incident-report and detention-notice links (scope records:reports)",
    Permission.REVOKE_ACCESS: "See who is signed in, and take back every sign-in, token and live video of one person",
    Permission.USE_ADMIN_PAGE: "Use the emergency panel page (/admin)",
    Permission.USE_VIEWER_PAGE: "Use the live cameras page (/view)",
    Permission.USE_DISPATCH_PAGE: "Use the dispatch page (/dispatch)",
    Permission.USE_AUDIT_PAGES: "Use the audit pages (/audit, the monthly report, incident records)",
}

# The OAuth2 scope a records client's token must also carry for a permission.
SCOPES: dict[Permission, str] = {
    Permission.POST_THREAT_RECORDS: "records:threats",
    Permission.POST_RESTRAINT_RECORDS: "records:restraints",
    Permission.POST_REPORT_RECORDS: "records:reports",
}

_PERSON = frozenset(
    {
        Permission.SIGN_IN,
        Permission.LIST_EMERGENCIES,
        Permission.READ_POLICY,
        Permission.LIST_ACCESS_REQUESTS,
        Permission.LIST_CAMERAS,
        Permission.GET_ICE_SERVERS,
        Permission.LIST_OWN_GRANTS,
    }
)
_ADMIN = _PERSON | {
    Permission.DECLARE_EMERGENCY,
    Permission.COMMAND_EMERGENCY,
    Permission.DECIDE_ACCESS_REQUESTS,
    Permission.SEE_THREAT_BASIS,
    Permission.SEE_CAMERA_METADATA,
    Permission.SEE_CAMERA_HEALTH,
    Permission.SEE_FLOOR_PLANS,
    Permission.LIST_VIEW_SESSIONS,
    Permission.READ_DISCLOSURE,
    Permission.READ_REPORT_LINKS,
    Permission.USE_ADMIN_PAGE,
    Permission.ISSUE_GUEST_PASS,
}
_AUDITING = frozenset(
    {
        Permission.READ_AUDIT,
        Permission.EXPORT_AUDIT,
        Permission.READ_DISCLOSURE,
        Permission.MONTHLY_REPORT,
        Permission.USE_AUDIT_PAGES,
    }
)

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.DISTRICT_ADMIN: _ADMIN | _AUDITING | {Permission.REVOKE_ACCESS},
    Role.BUILDING_ADMIN: _ADMIN,
    Role.DISPATCHER: _PERSON | {Permission.REQUEST_ACCESS, Permission.USE_DISPATCH_PAGE, Permission.ISSUE_GUEST_PASS},
    Role.OFFICER: _PERSON | {Permission.WATCH_LIVE, Permission.SEE_FLOOR_PLANS, Permission.USE_VIEWER_PAGE},
    Role.AUDITOR: _PERSON
    | _AUDITING
    | {Permission.SEE_THREAT_BASIS, Permission.SEE_CAMERA_METADATA, Permission.SEE_FLOOR_PLANS},
    Role.RECORDS_CLIENT: frozenset(
        {
            Permission.USE_CLIENT_CREDENTIALS,
            Permission.POST_THREAT_RECORDS,
            Permission.POST_RESTRAINT_RECORDS,
            Permission.POST_REPORT_RECORDS,
        }
    ),
}

# Held by the roles of IN_OWN_BUILDINGS only for the buildings they cover.
BUILDING_SCOPED = frozenset(
    {
        Permission.DECLARE_EMERGENCY,
        Permission.COMMAND_EMERGENCY,
        Permission.DECIDE_ACCESS_REQUESTS,
        Permission.SEE_CAMERA_METADATA,
        Permission.SEE_CAMERA_HEALTH,
        Permission.LIST_VIEW_SESSIONS,
        Permission.READ_DISCLOSURE,
        Permission.READ_REPORT_LINKS,
        Permission.ISSUE_GUEST_PASS,
    }
)
IN_OWN_BUILDINGS = frozenset({Role.BUILDING_ADMIN})

# The roles an identity provider may give the people it signs in (the ``roles`` of an
# ``oidc`` table, gateway/identity/oidc_config.py): an agency's provider vouches for
# police, the district's for staff; neither makes a records system. An agency's people in
# no mapped group are officers; the district's get no role.
AGENCY_PROVIDER_ROLES = (Role.OFFICER, Role.DISPATCHER)
DISTRICT_PROVIDER_ROLES = (Role.DISTRICT_ADMIN, Role.BUILDING_ADMIN, Role.DISPATCHER, Role.AUDITOR)
AGENCY_DEFAULT_ROLE = Role.OFFICER


def provider_roles(district: bool) -> tuple[Role, ...]:
    return DISTRICT_PROVIDER_ROLES if district else AGENCY_PROVIDER_ROLES


ROLE_LABELS: dict[Role, str] = {
    Role.DISTRICT_ADMIN: "District administrator",
    Role.BUILDING_ADMIN: "Building administrator",
    Role.DISPATCHER: "Dispatcher",
    Role.OFFICER: "Officer",
    Role.AUDITOR: "Auditor",
    Role.RECORDS_CLIENT: "Records system",
}

# Where "/" sends a signed-in person.
HOME_PAGES: dict[Role, str] = {
    Role.AUDITOR: "/audit",
    Role.OFFICER: "/view",
    Role.DISTRICT_ADMIN: "/admin",
    Role.BUILDING_ADMIN: "/admin",
    Role.DISPATCHER: "/dispatch",
}


def _holds(role: Role, permission: Permission, covers: Callable[[str], bool], building: str | None) -> bool:
    if permission not in MATRIX[role]:
        return False
    if building is None or permission not in BUILDING_SCOPED or role not in IN_OWN_BUILDINGS:
        return True
    return covers(building)


def basis(actor: Actor, permission: Permission, building: str | None = None) -> str | None:
    """Whose rights the actor uses: its own id, the id of the account it stands in for
    (for the audit log), or None when it may not."""
    if _holds(actor.role, permission, actor.covers, building):
        return actor.id
    for delegation in actor.stands_in_for:
        if _holds(delegation.role, permission, delegation.covers, building):
            return delegation.account_id
    return None


def may(actor: Actor, permission: Permission, building: str | None = None) -> bool:
    """Whether ``actor`` holds ``permission`` (for ``building``, or anywhere when None)."""
    return basis(actor, permission, building) is not None


def role_holds(role: Role, permission: Permission) -> bool:
    """For an account that is not acting (e.g. which accounts may sign in): its role alone."""
    return permission in MATRIX[role]


def roles_with(permission: Permission) -> list[Role]:
    return [role for role in Role if permission in MATRIX[role]]


def home_page(actor: Actor) -> str | None:
    return HOME_PAGES.get(actor.role)
