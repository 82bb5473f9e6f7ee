"""The plain words for one audit entry, from its catalogue template (emergency.audit.events).

The auditor console and every export show this same text. Names (people, cameras,
agencies) come from a ``Names`` the caller builds from the site; an id it does not
know is shown as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emergency.audit.entry import AuditEntry
from emergency.audit.events import AuditEvent

SYSTEM_NAME = "Sightline"
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


@dataclass(frozen=True)
class Names:
    """Display names by id; ids not found are shown as they are."""

    people: Mapping[str, str] = field(default_factory=dict)
    cameras: Mapping[str, str] = field(default_factory=dict)
    agencies: Mapping[str, str] = field(default_factory=dict)

    def person(self, person_id: str | None) -> str:
        if not person_id or person_id == "system":
            return SYSTEM_NAME
        name = self.people.get(person_id)
        return f"{name} ({person_id})" if name else person_id

    def camera(self, obj: str) -> str:
        camera_id = obj.removeprefix("camera:")
        name = self.cameras.get(camera_id)
        return f"{name} ({camera_id})" if name else camera_id or "a camera"

    def agency(self, agency_id: Any) -> str:
        if not agency_id:
            return "an agency"
        return self.agencies.get(str(agency_id), str(agency_id))


def describe(entry: AuditEntry, names: Names | None = None) -> str:
    """The entry in plain words; for a type the catalogue does not hold (an entry written
    by a later release), who did it and the type in words."""
    names = names or Names()
    event = AuditEvent.lookup(entry.event_type)
    if event is None:
        return f"{names.person(entry.actor_id)}: {_words(entry.event_type.replace('.', ' '))}"
    return fill(event.text, _Fields(entry, names))


def fill(template: str, fields: Mapping[str, Any]) -> str:
    """``template`` with its fields filled; see emergency.audit.events for the syntax."""

    def optional(match: re.Match[str]) -> str:
        for choice in match.group(1).split("|"):
            if all(_value(fields, name, fmt) is not None for name, fmt in _FIELD.findall(choice)):
                return _fill_fields(choice, fields)
        return ""

    return _fill_fields(_OPTIONAL.sub(optional, template), fields)


def _fill_fields(text: str, fields: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = _value(fields, match.group(1), match.group(2) or "")
        return "" if value is None else value

    return _FIELD.sub(one, text)


def _value(fields: Mapping[str, Any], name: str, fmt: str) -> str | None:
    """The field as text, or None when it has no value (then an optional part is left out)."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    kind, _, arg = fmt.partition(" ")
    if kind == "is":
        return "" if str(value) == arg else None
    if kind == "upper":
        return _words(str(value)).upper()
    if kind == "time":
        return _time(value)
    if kind == "duration":
        return duration(value)
    if kind == "count":
        if not isinstance(value, list | tuple):
            return None
        return f"{len(value)} {arg}{'' if len(value) == 1 else 's'}"
    return str(value)


class _Fields(Mapping[str, Any]):
    """An entry's fields as a template sees them: names resolved, then its details."""

    def __init__(self, entry: AuditEntry, names: Names) -> None:
        self._entry = entry
        self._names = names

    def __getitem__(self, key: str) -> Any:
        e, names = self._entry, self._names
        if key == "actor":
            return names.person(e.actor_id)
        if key == "viewer":
            return names.person(e.details.get("viewer") or e.actor_id)
        if key == "camera":
            return names.camera(e.object)
        if key == "agency":
            return names.agency(e.details.get("agency"))
        if key == "object":
            return e.object
        return e.details[key]

    def __iter__(self) -> Any:
        return iter(("actor", "viewer", "camera", "agency", "object", *self._entry.details))

    def __len__(self) -> int:
        return 5 + len(self._entry.details)


def _words(code: str) -> str:
    text = code.replace("_", " ")
    return text[:1].upper() + text[1:].lower()


def _time(value: Any) -> str | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: Any) -> str:
    """Like the console's durations: "45 s", "3 min 5 s", "2 h 10 min"."""
    s = math.floor(float(seconds) + 0.5)
    if s < 60:
        return f"{s} s"
    m, rest = divmod(s, 60)
    if m < 60:
        return f"{m} min {rest} s" if rest else f"{m} min"
    return f"{m // 60} h {m % 60} min"


__all__ = ["Names", "describe", "duration", "fill"]
