"""HTTP handlers, pages and the notifier reach storage only through domain services:
none of them touches a ``.store`` attribute (the gateway's store belongs to its wiring)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = sorted((ROOT / "gateway" / "api").glob("*.py")) + [
    ROOT / "gateway" / "notifier.py",
]


def store_uses(source: str) -> list[int]:
    """Lines reading or writing ``<anything>.store``, or naming it in getattr/setattr/hasattr."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "store":
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "store"
        ):
            lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("path", BOUNDARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_handlers_and_the_notifier_never_touch_a_store(path: Path) -> None:
    assert store_uses(path.read_text(encoding="utf-8")) == [], f"{path.name} reads storage directly"


def test_the_check_sees_a_store_access() -> None:
    assert store_uses("gw.store.get_grant('g')\nx = getattr(outbox, 'store')\nok = gw.records.get") == [1, 2]
