"""The site file model: district, buildings and zones, cameras, agencies, accounts, policy.

The gateway parses TOML into a dict and calls ``load_site``; anything unexpected is a
``SiteError`` naming its path, because a typo here could share the wrong camera.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Protocol, TypeVar

from emergency.errors import SiteError
from emergency.model import Delegation
from emergency.policy import Policy, parse_policy
from emergency.site_fields import Fields

__all__ = [
    "Account",
    "Agency",
    "Building",
    "Camera",
    "FLOOR_PLAN_EXTENSIONS",
    "PrivacyClass",
    "RECORD_SCOPES",
    "Role",
    "Site",
    "SiteError",
    "load_site",
]


class PrivacyClass(StrEnum):
    NORMAL = "normal"
    SENSITIVE = "sensitive"
    NEVER = "never"


class Role(StrEnum):
    DISTRICT_ADMIN = "district_admin"
    BUILDING_ADMIN = "building_admin"
    DISPATCHER = "dispatcher"
    OFFICER = "officer"
    AUDITOR = "auditor"
    RECORDS_CLIENT = "records_client"  # a district records system (OAuth2 client credentials)


# What a records client may be allowed to post, one scope per record type.
RECORD_SCOPES = ("records:threats", "records:restraints", "records:reports")

# The image types a building's floor plan may be (``floor_plan`` on a [[buildings]] entry).
FLOOR_PLAN_EXTENSIONS = (".png", ".jpg", ".jpeg", ".svg", ".webp")


@dataclass(frozen=True)
class Camera:
    id: str
    name: str
    building: str
    zone: str
    tags: tuple[str, ...]
    privacy: PrivacyClass
    main: str
    sub: str | None
    position: tuple[float, float] | None


@dataclass(frozen=True)
class Building:
    id: str
    name: str
    zones: tuple[str, ...]
    # The floor plan image, as a path relative to the site file's folder ("plans/x.svg"), or
    # None. Only the name: the gateway checks the file and serves its bytes; camera
    # positions are fractions of this image.
    floor_plan: str | None = None


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    agreement: bool  # named in the intergovernmental agreement


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    role: Role
    agency: str | None
    buildings: tuple[str, ...]  # empty = all
    designee_for: tuple[str, ...] = ()  # accounts whose command rights this one may use
    scopes: tuple[str, ...] = ()  # records_client only: which record types it may post (RECORD_SCOPES)


@dataclass(frozen=True)
class Site:
    district_id: str
    district_name: str
    buildings: dict[str, Building]
    cameras: dict[str, Camera]
    agencies: dict[str, Agency]
    accounts: dict[str, Account]
    policy: Policy
    # ``[district] camera_contact``: whom an officer of an agency without a camera agreement
    # should call (e.g. "District safety office, 555-0100"); told to them in plain words.
    camera_contact: str | None = None

    def delegations(self, account: Account) -> tuple[Delegation, ...]:
        return tuple(
            Delegation(self.accounts[t].id, self.accounts[t].role, self.accounts[t].buildings)
            for t in account.designee_for
        )


def load_site(data: dict[str, Any]) -> Site:
    root = Fields(data, "")
    district = root.table("district")
    district_id, district_name = district.ident("id"), district.text("name")
    camera_contact: str | None = district.text("camera_contact", None)
    district.finish()

    buildings = _unique(root.tables("buildings"), _building)
    if not buildings:
        raise root.error("buildings", "at least one building is required")
    agencies = _unique(root.tables("agencies"), _agency)
    accounts = _unique(root.tables("accounts"), lambda f: _account(f, buildings, agencies))
    for account in accounts.values():
        for target in account.designee_for:
            if target not in accounts or target == account.id:
                raise root.error(
                    f"accounts.{account.id}.designee_for", f"{target!r} is not another account of the site"
                )
    cameras = _unique(root.tables("cameras"), lambda f: _camera(f, buildings))
    zones = frozenset(z for b in buildings.values() for z in b.zones)
    policy = parse_policy(root.table("policy", optional=True), zones)
    root.finish()
    return Site(district_id, district_name, buildings, cameras, agencies, accounts, policy, camera_contact)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


def _unique(tables: list[Fields], parse: Callable[[Fields], T]) -> dict[str, T]:
    out: dict[str, T] = {}
    for f in tables:
        item = parse(f)
        if item.id in out:
            raise f.error("id", f"duplicate id {item.id!r}")
        out[item.id] = item
    return out


def _building(f: Fields) -> Building:
    building_id = f.ident("id")
    b = Building(building_id, f.text("name"), f.texts("zones"), _floor_plan(f, building_id))
    if not b.zones:
        raise f.error("zones", "at least one zone is required")
    if len(set(b.zones)) != len(b.zones):
        raise f.error("zones", "duplicate zone")
    if "*" in b.zones:
        raise f.error("zones", "'*' is reserved for 'all zones' in the policy")
    f.finish()
    return b


def _floor_plan(f: Fields, building_id: str) -> str | None:
    """The plan's file name as written: relative, no '..', one of the image types. Whether
    the file exists (and stays inside the site folder) is the gateway's check at load."""
    value: str | None = f.text("floor_plan", None)
    if value is None:
        return None
    fix = f'give a path relative to the site file\'s folder, e.g. "plans/{building_id}.svg"'
    if "\\" in value:
        raise f.error("floor_plan", f"building {building_id!r}: {value!r} has a backslash; use '/' between folders")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or (len(value) > 1 and value[1] == ":"):
        raise f.error(
            "floor_plan",
            f"building {building_id!r}: {value!r} must stay inside the site file's folder "
            f"(no absolute path, no '..'); {fix}",
        )
    if path.suffix.lower() not in FLOOR_PLAN_EXTENSIONS:
        raise f.error(
            "floor_plan",
            f"building {building_id!r}: {value!r} is not a floor plan image; use a "
            f"{', '.join(FLOOR_PLAN_EXTENSIONS)} file",
        )
    return value


def _agency(f: Fields) -> Agency:
    a = Agency(f.ident("id"), f.text("name"), f.boolean("agreement", False))
    f.finish()
    return a


def _account(f: Fields, buildings: dict[str, Building], agencies: dict[str, Agency]) -> Account:
    a = Account(
        f.ident("id"),
        f.text("name"),
        f.choice("role", Role),
        f.text("agency", None),
        f.texts("buildings", ()),
        f.texts("designee_for", ()),
        f.texts("scopes", ()),
    )
    if a.role is Role.RECORDS_CLIENT:
        if not a.scopes:
            raise f.error("scopes", f"a records_client needs at least one of {', '.join(RECORD_SCOPES)}")
        for i, scope in enumerate(a.scopes):
            if scope not in RECORD_SCOPES:
                raise f.error(f"scopes[{i}]", f"{scope!r} is not one of {', '.join(RECORD_SCOPES)}")
        if a.agency is not None or a.designee_for:
            raise f.error("role", "a records_client has no agency and stands in for no one")
    elif a.scopes:
        raise f.error("scopes", "only a records_client account has scopes")
    if a.agency is not None and a.agency not in agencies:
        raise f.error("agency", f"{a.agency!r} is not an agency of the site")
    if a.role is Role.OFFICER and a.agency is None:
        raise f.error("agency", "an officer must belong to an agency")
    if a.role is Role.BUILDING_ADMIN and not a.buildings:
        raise f.error("buildings", "a building_admin needs at least one building")
    for i, b in enumerate(a.buildings):
        if b not in buildings:
            raise f.error(f"buildings[{i}]", f"{b!r} is not a building of the site")
    f.finish()
    return a


def _camera(f: Fields, buildings: dict[str, Building]) -> Camera:
    camera_id, name = f.ident("id"), f.text("name")
    building = f.text("building")
    if building not in buildings:
        raise f.error("building", f"{building!r} is not a building of the site")
    zone = f.text("zone")
    if zone not in buildings[building].zones:
        raise f.error("zone", f"{zone!r} is not a zone of building {building!r}")
    c = Camera(
        id=camera_id,
        name=name,
        building=building,
        zone=zone,
        tags=f.texts("tags", ()),
        privacy=f.choice("privacy", PrivacyClass),
        main=f.text("main"),
        sub=f.text("sub", None),
        position=f.point("position"),
    )
    f.finish()
    return c
