"""The layers as DESIGN.md draws them (web → gateway → emergency, camera_adapters): each
package imports only what is below it, read from every module's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level modules it must never import
FORBIDDEN = {
    "emergency": {"gateway", "camera_adapters", "web", "fastapi", "starlette", "aiortc", "av", "uvicorn"},
    "camera_adapters": {"gateway", "emergency", "web", "fastapi", "starlette"},
}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_modules(path) & FORBIDDEN[package])
    ]
    assert not offenders, offenders


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom gateway.app import create_app\n\ndef f():\n    import fastapi\n")
    assert imported_modules(module) == {"os", "gateway", "fastapi"}
