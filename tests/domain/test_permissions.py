"""The permission matrix (emergency/permissions.py): roles, building scope, designees, and
that no other module compares a role."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from emergency import authority
from emergency.model import Actor, Delegation
from emergency.permissions import (
    BUILDING_SCOPED,
    DESCRIPTIONS,
    HOME_PAGES,
    MATRIX,
    ROLE_LABELS,
    Permission,
    basis,
    may,
    role_holds,
    roles_with,
)
from emergency.site import Role

ROOT = Path(__file__).resolve().parents[2]
P = Permission


def actor(
    role: Role, buildings: tuple[str, ...] = (), *, stands_in_for: tuple[Delegation, ...] = (), ident: str = "someone"
) -> Actor:
    agency = "village-pd" if role in (Role.OFFICER, Role.DISPATCHER) else None
    return Actor(ident, role, agency, buildings, True, stands_in_for)


DISTRICT = actor(Role.DISTRICT_ADMIN)
PRINCIPAL = actor(Role.BUILDING_ADMIN, ("lincoln-hs",))
DISPATCHER = actor(Role.DISPATCHER)
OFFICER = actor(Role.OFFICER)
AUDITOR = actor(Role.AUDITOR)
RECORDS = actor(Role.RECORDS_CLIENT, ("lincoln-hs",))


def test_every_permission_is_described_and_every_role_has_a_row() -> None:
    assert set(DESCRIPTIONS) == set(Permission)
    assert all(DESCRIPTIONS[p].strip() for p in Permission)
    assert set(MATRIX) == set(Role) and set(ROLE_LABELS) == set(Role)
    assert set(HOME_PAGES) == {r for r in Role if role_holds(r, P.SIGN_IN)}
    assert all(roles_with(p) for p in Permission), "a permission nobody holds"


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (
            DISTRICT,
            {
                P.DECLARE_EMERGENCY,
                P.COMMAND_EMERGENCY,
                P.READ_AUDIT,
                P.EXPORT_AUDIT,
                P.MONTHLY_REPORT,
                P.LIST_VIEW_SESSIONS,
                P.SEE_THREAT_BASIS,
                P.USE_ADMIN_PAGE,
                P.USE_AUDIT_PAGES,
            },
        ),
        (
            PRINCIPAL,
            {P.DECLARE_EMERGENCY, P.COMMAND_EMERGENCY, P.DECIDE_ACCESS_REQUESTS, P.READ_DISCLOSURE, P.USE_ADMIN_PAGE},
        ),
        (DISPATCHER, {P.REQUEST_ACCESS, P.USE_DISPATCH_PAGE, P.LIST_EMERGENCIES}),
        (OFFICER, {P.WATCH_LIVE, P.USE_VIEWER_PAGE, P.GET_ICE_SERVERS}),
        (AUDITOR, {P.READ_AUDIT, P.EXPORT_AUDIT, P.SEE_THREAT_BASIS, P.USE_AUDIT_PAGES}),
        (RECORDS, {P.POST_THREAT_RECORDS, P.POST_RESTRAINT_RECORDS, P.POST_REPORT_RECORDS, P.USE_CLIENT_CREDENTIALS}),
    ],
)
def test_each_role_holds_what_it_needs(who: Actor, allowed: set[Permission]) -> None:
    assert all(may(who, p) for p in allowed), [p for p in allowed if not may(who, p)]


@pytest.mark.parametrize(
    ("who", "refused"),
    [
        (PRINCIPAL, {P.READ_AUDIT, P.EXPORT_AUDIT, P.MONTHLY_REPORT, P.WATCH_LIVE, P.USE_AUDIT_PAGES}),
        (
            DISPATCHER,
            {
                P.WATCH_LIVE,
                P.DECLARE_EMERGENCY,
                P.DECIDE_ACCESS_REQUESTS,
                P.SEE_THREAT_BASIS,
                P.SEE_FLOOR_PLANS,
                P.USE_ADMIN_PAGE,
            },
        ),
        (
            OFFICER,
            {
                P.DECLARE_EMERGENCY,
                P.COMMAND_EMERGENCY,
                P.READ_AUDIT,
                P.SEE_THREAT_BASIS,
                P.LIST_VIEW_SESSIONS,
                P.SEE_CAMERA_HEALTH,
            },
        ),
        (AUDITOR, {P.DECLARE_EMERGENCY, P.COMMAND_EMERGENCY, P.WATCH_LIVE, P.READ_REPORT_LINKS}),
        (RECORDS, {P.SIGN_IN, P.LIST_EMERGENCIES, P.LIST_CAMERAS, P.GET_ICE_SERVERS, P.WATCH_LIVE}),
    ],
)
def test_each_role_is_refused_what_it_must_not_do(who: Actor, refused: set[Permission]) -> None:
    assert not any(may(who, p) for p in refused), [p for p in refused if may(who, p)]


def test_only_records_systems_post_records_and_only_people_sign_in() -> None:
    for p in (P.POST_THREAT_RECORDS, P.POST_RESTRAINT_RECORDS, P.POST_REPORT_RECORDS, P.USE_CLIENT_CREDENTIALS):
        assert roles_with(p) == [Role.RECORDS_CLIENT]
    assert Role.RECORDS_CLIENT not in roles_with(P.SIGN_IN)
    assert roles_with(P.WATCH_LIVE) == [Role.OFFICER]


def test_a_building_admin_holds_building_scoped_permissions_in_its_buildings_only() -> None:
    for p in BUILDING_SCOPED:
        assert may(PRINCIPAL, p, "lincoln-hs") and not may(PRINCIPAL, p, "washington-ms"), p
        assert may(PRINCIPAL, p), "asked without a building: held somewhere"
        assert may(DISTRICT, p, "washington-ms"), "a district administrator holds them everywhere"
    # Not building-scoped: the same answer for every building.
    assert may(PRINCIPAL, P.SEE_THREAT_BASIS, "washington-ms")
    assert may(AUDITOR, P.READ_DISCLOSURE, "washington-ms")
    # A district administrator whose account names buildings still commands everywhere.
    assert may(actor(Role.DISTRICT_ADMIN, ("lincoln-hs",)), P.COMMAND_EMERGENCY, "washington-ms")


def test_a_designee_holds_the_delegating_roles_permissions_for_its_buildings() -> None:
    for_principal = Delegation("principal", Role.BUILDING_ADMIN, ("lincoln-hs",))
    assistant = actor(Role.OFFICER, stands_in_for=(for_principal,), ident="assistant")
    assert may(assistant, P.COMMAND_EMERGENCY, "lincoln-hs")
    assert not may(assistant, P.COMMAND_EMERGENCY, "washington-ms")
    assert basis(assistant, P.COMMAND_EMERGENCY, "lincoln-hs") == "principal"  # audited as standing in
    assert basis(assistant, P.WATCH_LIVE) == "assistant"  # its own right first
    assert may(assistant, P.USE_ADMIN_PAGE) and may(assistant, P.USE_VIEWER_PAGE)
    assert not may(assistant, P.READ_AUDIT)
    for_district = Delegation("admin", Role.DISTRICT_ADMIN, ())
    deputy = actor(Role.AUDITOR, stands_in_for=(for_district,), ident="deputy")
    assert basis(deputy, P.COMMAND_EMERGENCY, "washington-ms") == "admin"
    assert basis(deputy, P.READ_AUDIT) == "deputy"
    assert basis(OFFICER, P.COMMAND_EMERGENCY, "lincoln-hs") is None


def test_the_domain_rules_ask_the_matrix() -> None:
    assert authority.may_command(PRINCIPAL, "lincoln-hs") and not authority.may_command(PRINCIPAL, "washington-ms")
    assert not authority.may_command(DISPATCHER, "lincoln-hs")
    delegated = actor(Role.DISPATCHER, stands_in_for=(Delegation("principal", Role.BUILDING_ADMIN, ("lincoln-hs",)),))
    assert authority.command_basis(delegated, "lincoln-hs") == "principal"
    assert authority.may_see_floor_plan(PRINCIPAL, "lincoln-hs", []) is True
    assert authority.may_see_floor_plan(OFFICER, "lincoln-hs", []) is False


# ---------------------------------------------------------------------- one place for roles


def _role_comparisons(path: Path) -> list[str]:
    """``x is Role.Y``, ``x == Role.Y``, ``x in (Role.Y, ...)``, ``{Role.Y: ...}`` and sets of roles."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name

    def names_a_role(node: ast.AST) -> bool:
        return any(
            isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "Role"
            for n in ast.walk(node)
        )

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and names_a_role(node):
            found.append(f"{where}:{node.lineno} compares a role")
        elif isinstance(node, ast.Dict) and any(k is not None and names_a_role(k) for k in node.keys):
            found.append(f"{where}:{node.lineno} keys a dict by role")
        elif isinstance(node, (ast.Set, ast.Tuple, ast.List)) and names_a_role(node):
            found.append(f"{where}:{node.lineno} lists roles")
    return found


def test_no_role_is_compared_outside_the_matrix() -> None:
    allowed = {ROOT / "emergency" / "permissions.py", ROOT / "emergency" / "site.py"}
    files = [
        p for folder in ("gateway", "emergency") for p in sorted((ROOT / folder).rglob("*.py")) if p not in allowed
    ]
    assert len(files) > 20
    assert [hit for p in files for hit in _role_comparisons(p)] == []


def test_the_role_check_finds_a_comparison(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from emergency.site import Role\n\ndef f(who):\n    return who.role is Role.OFFICER\n"
        "ADMINS = {Role.DISTRICT_ADMIN}\nHOME = {Role.AUDITOR: '/audit'}\n"
    )
    assert sorted(h.split(" ", 1)[1] for h in _role_comparisons(sample)) == [
        "compares a role",
        "keys a dict by role",
        "lists roles",
    ]


# ---------------------------------------------------------------------- the generated document


def test_docs_permissions_md_is_up_to_date() -> None:
    """Regenerate with: python -m gateway.identity.guards --markdown > docs/permissions.md"""
    out = subprocess.run(
        [sys.executable, "-m", "gateway.identity.guards", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "**none declared**" not in out
    committed = (ROOT / "docs" / "permissions.md").read_text(encoding="utf-8")
    assert committed == out, (
        "docs/permissions.md is out of date: python -m gateway.identity.guards --markdown > docs/permissions.md"
    )
