"""Lenient reading of what zeep parsed from a camera's answer.

zeep gives objects with attribute access (tests and ``serialize_object`` give mappings);
firmwares leave out elements the schema calls mandatory, so any step may be missing and
every reader answers None rather than raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal


def field(value: object, *path: str) -> object:
    """The value along ``path`` of element names, or None."""
    for name in path:
        if value is None:
            return None
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
    return value


def text(value: object, *path: str) -> str | None:
    found = field(value, *path)
    if found is None:
        return None
    return str(found).strip()


def number(value: object, *path: str) -> float | None:
    found = field(value, *path)
    if isinstance(found, bool):
        return None
    if isinstance(found, (int, float, Decimal)):
        return float(found)
    try:
        return float(str(found)) if found is not None else None
    except ValueError:
        return None


def integer(value: object, *path: str) -> int | None:
    found = number(value, *path)
    return int(found) if found is not None and found.is_integer() else None


def items(value: object, *path: str) -> list[object]:
    """A repeated element as a list (zeep gives a list, or the one item, or None)."""
    found = field(value, *path) if path else value
    if found is None:
        return []
    return list(found) if isinstance(found, (list, tuple)) else [found]
