"""Officers (and district staff) provisioned from their provider's ID token.

The first sign-in through a provider stores the person (emergency.people) as
``"{owner}:{sub}"``, named from the token, with the badge from the configured claim and
the role its group mapping gives (gateway/identity/oidc_config.py); each later sign-in
brings those up to date. The directory (gateway/identity/directory.py) answers their ids
from the store, only while their provider stays in the site file: removing a provider
takes its people's tokens and sessions away at once.
"""

from __future__ import annotations

from typing import Any

from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.model import Actor
from emergency.people import Person, person_id
from emergency.site import Account
from emergency.store import PeopleRepo
from gateway.identity.directory import Directory
from gateway.identity.oidc import AGAIN, OidcRefused
from gateway.identity.oidc_config import OidcProvider

MAX_NAME = 128


class People:
    """The people provisioned at sign-in, as the HTTP handlers reach them (they never touch
    the store themselves)."""

    def __init__(self, store: PeopleRepo, audit: AuditLog, clock: Clock) -> None:
        self._store, self._audit, self._clock = store, audit, clock

    def provision(self, provider: OidcProvider, claims: dict[str, Any], source: str | None) -> Person:
        return provision(provider, claims, self._store, self._audit, self._clock, source)

    def get(self, account_id: str) -> Person | None:
        return self._store.get_person(account_id)


def register_people(directory: Directory, store: PeopleRepo, providers: dict[str, OidcProvider]) -> None:
    """Ids ``"{owner}:..."`` of every configured provider are answered from the store."""
    for owner in providers:

        def lookup(account_id: str, owner: str = owner) -> Account | None:
            person = store.get_person(account_id)
            return person.account() if person is not None and person.owner == owner else None

        directory.register(owner, lookup)


def _claim_text(claims: dict[str, Any], key: str | None) -> str | None:
    value = claims.get(key) if key else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:MAX_NAME]
    return text if text and text.isprintable() else None


def name_of(claims: dict[str, Any]) -> str:
    given, family = _claim_text(claims, "given_name"), _claim_text(claims, "family_name")
    both = " ".join(x for x in (given, family) if x) or None
    return _claim_text(claims, "name") or both or _claim_text(claims, "preferred_username") or str(claims["sub"])


def groups_of(claims: dict[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(str(g) for g in value if isinstance(g, str | int))
    return frozenset()


def provision(
    provider: OidcProvider, claims: dict[str, Any], store: PeopleRepo, audit: AuditLog, clock: Clock, source: str | None
) -> Person:
    """The person the ID token names, stored (added or brought up to date) and audited."""
    rule = provider.role_for(groups_of(claims, provider.groups_claim))
    if rule is None:
        groups = ", ".join(r.group for r in provider.roles)
        raise OidcRefused(
            f"the subject is in none of the groups mapped to a role ({groups})",
            f"{provider.owner_name} signed you in, but your account is in none of the groups that "
            f"Sightline gives a role to ({groups}). Ask your IT department to add you to the right one. " + AGAIN,
            status=403,
            provider=provider,
        )
    now = clock.now()
    sub = str(claims["sub"])
    ident = person_id(provider.owner, sub)
    old = store.get_person(ident)
    person = Person(
        id=ident,
        owner=provider.owner,
        subject=sub,
        name=name_of(claims),
        badge=_claim_text(claims, provider.badge_claim),
        role=rule.role,
        agency=None if provider.district else provider.owner,
        buildings=rule.buildings,
        first_seen=old.first_seen if old else now,
        last_seen=now,
    )
    store.upsert_person(person)
    actor = Actor.from_account(person.account(), mfa=False, delegations=())
    details = {"agency": provider.owner, "issuer": provider.issuer, "subject": sub, "badge": person.badge}
    if old is None:
        audit.append(
            AuditEvent.PERSON_PROVISIONED,
            actor=actor,
            object=f"account:{ident}",
            source=source,
            reason=f"first sign-in through {provider.issuer}",
            details={**details, "name": person.name, "role": str(person.role), "buildings": list(person.buildings)},
        )
    else:
        changed = old.changes(person)
        if changed:
            audit.append(
                AuditEvent.PERSON_UPDATED,
                actor=actor,
                object=f"account:{ident}",
                source=source,
                reason="the ID token differs from the previous sign-in",
                details={
                    **details,
                    "fields": ", ".join(changed),
                    "before": {f: _plain(getattr(old, f)) for f in changed},
                    "after": {f: _plain(getattr(person, f)) for f in changed},
                },
            )
    return person


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else str(value) if value is not None else None
