"""People provisioned at sign-in: an agency's (or the district's) OpenID Connect subjects.

Nobody writes them into the site file: the first sign-in through their provider stores
them, and every later sign-in brings their name, badge and role up to date from the ID
token. Their account id is ``"{owner}:{sub}"`` (owner: the agency's or the district's id),
which no site-file id can be (those have no colon).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from emergency.site import Account, Role


@dataclass(frozen=True)
class Person:
    id: str  # "{owner}:{sub}"
    owner: str  # agency id, or the district id for district staff
    subject: str  # the provider's "sub"
    name: str
    badge: str | None
    role: Role
    agency: str | None  # None for district staff
    buildings: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime

    def account(self) -> Account:
        return Account(self.id, self.name, self.role, self.agency, self.buildings)

    def changes(self, newer: Person) -> list[str]:
        """What a sign-in changed: the fields it read from the ID token."""
        return [f for f in ("name", "badge", "role", "buildings") if getattr(self, f) != getattr(newer, f)]

    def seen(self, at: datetime) -> Person:
        return replace(self, last_seen=at)


def person_id(owner: str, subject: str) -> str:
    return f"{owner}:{subject}"
