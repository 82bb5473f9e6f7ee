"""Writing the small subset of TOML that site files use (the stdlib only reads TOML)."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(i) for i in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _table(name: str, data: dict[str, Any], header: str) -> list[str]:
    lines = [header]
    nested = []
    for key, v in data.items():
        if isinstance(v, dict):
            nested.append((f"{name}.{key}", v))
        else:
            lines.append(f"{key} = {_value(v)}")
    for sub_name, sub in nested:
        lines += ["", *_table(sub_name, sub, f"[{sub_name}]")]
    return lines


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a site file: tables, arrays of tables, scalars and flat lists."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, dict):
            lines += [*_table(name, value, f"[{name}]"), ""]
        elif isinstance(value, list) and all(isinstance(i, dict) for i in value):
            for item in value:
                lines += [*_table(name, item, f"[[{name}]]"), ""]
        else:
            raise TypeError(f"top-level key {name!r} must be a table or an array of tables")
    return "\n".join(lines)
