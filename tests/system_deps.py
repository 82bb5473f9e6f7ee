"""One rule for tests that need something installed on the machine (a Debian package, a
server, a built extension): with CI=true its absence fails the run, else the test skips."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str, *, module: bool = False) -> NoReturn:
    """Fail (CI=true) or skip, saying what to install; ``module`` skips the whole module."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing dependency is a failure)", pytrace=False)
    pytest.skip(message, allow_module_level=module)
