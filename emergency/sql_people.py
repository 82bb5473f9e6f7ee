"""SqlStore's ``people`` table (revision 0004): who signed in through an OpenID Connect
provider, kept up to date at each sign-in (emergency.people)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from emergency.people import Person
from emergency.site import Role

PEOPLE_COLUMNS = ("id", "owner", "subject", "name", "badge", "role", "agency", "buildings", "first_seen", "last_seen")
_UPDATED = ("name", "badge", "role", "agency", "buildings", "last_seen")


class SqlPeople(ABC):
    """Mixed into SqlStore; uses its statement helpers."""

    @abstractmethod
    def _write(self, sql: str, params: tuple[Any, ...]) -> int: ...

    @abstractmethod
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Any]: ...

    @staticmethod
    @abstractmethod
    def _ts(t: datetime | None, /) -> Any: ...

    @staticmethod
    @abstractmethod
    def _dt(value: Any, /) -> datetime | None: ...

    def upsert_person(self, person: Person) -> None:
        """Adds the person, or rewrites what a sign-in may change (first_seen stays)."""
        columns = ", ".join(PEOPLE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
        self._write(
            f"INSERT INTO people ({columns}) VALUES ({', '.join('?' * len(PEOPLE_COLUMNS))})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}",
            (
                person.id,
                person.owner,
                person.subject,
                person.name,
                person.badge,
                str(person.role),
                person.agency,
                json.dumps(list(person.buildings)),
                self._ts(person.first_seen),
                self._ts(person.last_seen),
            ),
        )

    def get_person(self, person_id: str) -> Person | None:
        rows = self._rows(f"SELECT {', '.join(PEOPLE_COLUMNS)} FROM people WHERE id = ?", (person_id,))
        if not rows:
            return None
        r = rows[0]
        first, last = self._dt(r["first_seen"]), self._dt(r["last_seen"])
        assert first is not None and last is not None  # NOT NULL columns
        return Person(
            id=r["id"],
            owner=r["owner"],
            subject=r["subject"],
            name=r["name"],
            badge=r["badge"],
            role=Role(r["role"]),
            agency=r["agency"],
            buildings=tuple(json.loads(r["buildings"])),
            first_seen=first,
            last_seen=last,
        )
