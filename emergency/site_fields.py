"""Reading one table of the site file, so every error names its path and no key goes unnoticed."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, TypeVar

from emergency.errors import SiteError

E = TypeVar("E", bound=StrEnum)
_REQUIRED: Any = object()
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Fields:
    """A table of the site file; call ``finish()`` once read so unknown keys (typos) are refused."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise SiteError(f"{path or 'site'}: expected a table, got {type(data).__name__}")
        self._data: dict[str, Any] = data
        self.path = path
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> SiteError:
        return SiteError(f"{self.at(key)}: {problem}")

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self._data:
            return self._data[key]
        if default is _REQUIRED:
            raise self.error(key, "required")
        return default

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def ident(self, key: str) -> str:
        value: str = self.text(key)
        if not _ID.match(value):
            raise self.error(key, f"{value!r} is not a valid id (letters, digits, '.', '_', '-')")
        return value

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def integer(self, key: str, default: Any = _REQUIRED, *, minimum: int = 0) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def texts(self, key: str, default: Any = _REQUIRED) -> tuple[str, ...]:
        value = self._get(key, default)
        if not isinstance(value, list | tuple):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise SiteError(f"{self.at(key)}[{i}]: expected a non-empty string, got {item!r}")
        return tuple(value)

    def choice(self, key: str, enum: type[E], default: Any = _REQUIRED) -> E:
        value = self._get(key, default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum)
            raise self.error(key, f"{value!r} is not one of {allowed}") from None

    def point(self, key: str) -> tuple[float, float] | None:
        value = self._get(key, None)
        if value is None:
            return None
        ok = (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            raise self.error(key, f"expected [x, y] numbers, got {value!r}")
        return (float(value[0]), float(value[1]))

    def table(self, key: str, *, optional: bool = False) -> Fields:
        value = self._get(key, {} if optional else _REQUIRED)
        return Fields(value, self.at(key))

    def tables(self, key: str) -> list[Fields]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise self.error(key, "expected an array of tables ([[...]])")
        return [Fields(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]

    def keys(self) -> list[str]:
        self._read.update(self._data)
        return list(self._data)

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise self.error(unknown[0], "unknown key")
