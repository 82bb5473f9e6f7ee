"""An agency's (or the district's) OpenID Connect provider, as the site file names it.

``oidc = { issuer, client_id, client_secret, mfa_amr, mfa_acr, groups_claim, roles,
badge_claim }`` on an ``[[agencies]]`` entry or on ``[district]``. The table is taken off
before the domain reads the site file (like a camera's password): the domain knows
agencies and roles, not how their people prove who they are. The client secret is
stored sealed (``sightline seal``), never in plain text.

``roles`` maps a group (from the ``groups_claim`` of the ID token) to a role, or to a
table ``{ role = "building_admin", buildings = [...] }`` for a building administrator.
The first entry whose group the person is in decides. An agency's people with no
mapped group are officers; the district's are refused (no role is assumed for staff).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emergency.permissions import AGENCY_DEFAULT_ROLE, IN_OWN_BUILDINGS, provider_roles
from emergency.site import Role, Site

OIDC_KEY = "oidc"
OIDC_KEYS = frozenset(
    {"issuer", "client_id", "client_secret", "mfa_amr", "mfa_acr", "groups_claim", "roles", "badge_claim"}
)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class OidcConfigError(ValueError):
    """The ``oidc`` table cannot be used; the message names the key and what to do."""


@dataclass(frozen=True)
class RoleRule:
    group: str
    role: Role
    buildings: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcProvider:
    """One provider: ``owner`` is the agency id (or the district id) its people belong to."""

    owner: str
    owner_name: str
    district: bool  # the district's own staff, not an agency's officers
    issuer: str
    client_id: str
    sealed_client_secret: str = field(repr=False)
    mfa_amr: tuple[str, ...] = ()
    mfa_acr: tuple[str, ...] = ()
    groups_claim: str = "groups"
    roles: tuple[RoleRule, ...] = ()
    badge_claim: str | None = None

    def role_for(self, groups: frozenset[str]) -> RoleRule | None:
        """The first rule whose group the person is in; an agency's default is officer."""
        for rule in self.roles:
            if rule.group in groups:
                return rule
        return None if self.district else RoleRule("", AGENCY_DEFAULT_ROLE)

    def proves_mfa(self, amr: object, acr: object) -> bool:
        methods = {str(m) for m in amr} if isinstance(amr, list) else set()
        return bool(methods.intersection(self.mfa_amr)) or (isinstance(acr, str) and acr in self.mfa_acr)


@dataclass
class _Pending:
    where: str
    owner: str | None
    district: bool
    table: dict[str, Any]


def pop_oidc(raw: dict[str, Any], path: Path) -> list[_Pending]:
    """Take every ``oidc`` table off ``[district]`` and the ``[[agencies]]`` entries; read
    them with :func:`read_oidc` once the site is loaded (roles need its buildings)."""
    found: list[_Pending] = []
    district = raw.get("district")
    if isinstance(district, dict) and OIDC_KEY in district:
        found.append(_Pending(f"{path}: district.oidc", district.get("id"), True, district.pop(OIDC_KEY)))
    agencies = raw.get("agencies", [])
    if isinstance(agencies, list):
        for i, entry in enumerate(agencies):
            if isinstance(entry, dict) and OIDC_KEY in entry:
                found.append(_Pending(f"{path}: agencies[{i}].oidc", entry.get("id"), False, entry.pop(OIDC_KEY)))
    return found


def read_oidc(pending: list[_Pending], site: Site) -> dict[str, OidcProvider]:
    """The providers by owner id, checked against the loaded site."""
    providers: dict[str, OidcProvider] = {}
    for p in pending:
        owner = str(p.owner)
        name = site.district_name if p.district else site.agencies[owner].name
        provider = _provider(p, owner, name, site)
        if owner == "callback":  # /signin/oidc/callback is the way back from every provider
            raise OidcConfigError(f"{p.where}: an agency with a provider cannot have the id 'callback'; rename it")
        if not p.district and owner == site.district_id:
            raise OidcConfigError(f"{p.where}: agency id {owner!r} is also the district's id; rename the agency")
        providers[owner] = provider
    return providers


def _provider(p: _Pending, owner: str, name: str, site: Site) -> OidcProvider:
    where, table = p.where, p.table
    if not isinstance(table, dict):
        raise OidcConfigError(f"{where} must be a table: oidc = {{ issuer = ..., client_id = ..., ... }}")
    unknown = set(table) - OIDC_KEYS
    if unknown:
        raise OidcConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(OIDC_KEYS)}")
    issuer = _text(table, "issuer", where).rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise OidcConfigError(f"{where}.issuer must be the provider's https:// issuer URL, not {issuer!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise OidcConfigError(f"{where}.issuer must use https (plain http only for a provider on this host)")
    secret = _text(table, "client_secret", where)
    if not secret.startswith("enc:"):
        raise OidcConfigError(
            f"{where}.client_secret is stored in plain text; replace it with what "
            "'echo -n SECRET | sightline seal --config SITE.toml' prints (sealed with this node's key)"
        )
    mfa_amr, mfa_acr = _texts(table, "mfa_amr", where), _texts(table, "mfa_acr", where)
    if not mfa_amr and not mfa_acr:
        raise OidcConfigError(
            f"{where} needs mfa_amr or mfa_acr: the amr or acr values by which the provider says a "
            'second factor was used (e.g. mfa_amr = ["mfa", "otp", "hwk"]); without them nobody it '
            "signs in may open video"
        )
    badge = table.get("badge_claim")
    if badge is not None and (not isinstance(badge, str) or not badge):
        raise OidcConfigError(f'{where}.badge_claim must be the name of a claim, e.g. "badge_number"')
    groups_claim = table.get("groups_claim", "groups")
    if not isinstance(groups_claim, str) or not groups_claim:
        raise OidcConfigError(f'{where}.groups_claim must be the name of a claim, e.g. "groups"')
    return OidcProvider(
        owner=owner,
        owner_name=name,
        district=p.district,
        issuer=issuer,
        client_id=_text(table, "client_id", where),
        sealed_client_secret=secret,
        mfa_amr=mfa_amr,
        mfa_acr=mfa_acr,
        groups_claim=groups_claim,
        roles=_roles(table.get("roles", {}), f"{where}.roles", p.district, site),
        badge_claim=badge,
    )


def _roles(value: object, where: str, district: bool, site: Site) -> tuple[RoleRule, ...]:
    allowed = provider_roles(district)
    names = ", ".join(allowed)
    if not isinstance(value, Mapping):
        raise OidcConfigError(f'{where} must be a table of group = role, e.g. {{ "patrol" = "officer" }}')
    if district and not value:
        raise OidcConfigError(
            f"{where} must map at least one group to a role ({names}): district staff get no role by default"
        )
    rules = []
    for group, target in value.items():
        at = f"{where}.{group!r}"
        buildings: tuple[str, ...] = ()
        if isinstance(target, Mapping):
            extra = set(target) - {"role", "buildings"}
            if extra:
                raise OidcConfigError(f"{at} has unknown keys {sorted(extra)}; known: ['buildings', 'role']")
            buildings = _texts(target, "buildings", at)
            target = target.get("role")
        if target not in allowed:
            raise OidcConfigError(
                f"{at} must be one of {names} (or {{ role = ..., buildings = [...] }}), not {target!r}"
            )
        role = Role(str(target))
        for b in buildings:
            if b not in site.buildings:
                raise OidcConfigError(f"{at}.buildings: {b!r} is not a building of the site")
        scoped = role in IN_OWN_BUILDINGS
        if scoped and not buildings:
            raise OidcConfigError(f'{at}: a {role} needs its buildings: {{ role = "{role}", buildings = ["..."] }}')
        if buildings and not scoped:
            raise OidcConfigError(f"{at}: only a building_admin is limited to buildings")
        rules.append(RoleRule(str(group), role, buildings))
    return tuple(rules)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OidcConfigError(f"{where}.{key} is required: a non-empty string")
    return value.strip()


def _texts(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise OidcConfigError(f'{where}.{key} must be a list of strings, e.g. ["mfa"]')
    return tuple(value)
