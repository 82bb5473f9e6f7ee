"""Building floor plans: the image files that ``floor_plan`` on a ``[[buildings]]`` entry names.

The domain keeps only the name (a path relative to the site file's folder, checked for
form in emergency/site.py). Here the file itself is checked when the site file loads,
and again each time it is served (it may have changed since): it must lie inside the
site file's folder after following symbolic links, be a regular file of at most
``MAX_BYTES``, and be the image type its name says (by its first bytes).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from emergency.site import FLOOR_PLAN_EXTENSIONS

MAX_BYTES = 5 * 1024 * 1024

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
assert set(MEDIA_TYPES) == set(FLOOR_PLAN_EXTENSIONS)

_KIND = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".svg": "SVG", ".webp": "WebP"}


class FloorPlanError(ValueError):
    """The plan file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class FloorPlan:
    building: str
    name: str  # as written in the site file, relative to its folder
    path: Path  # resolved when the site file loaded
    root: Path  # the site file's folder, resolved
    media_type: str

    @property
    def is_svg(self) -> bool:
        return self.media_type == "image/svg+xml"


def locate(site_dir: Path, name: str, building: str) -> FloorPlan:
    """The plan ``name`` (relative to ``site_dir``) of ``building``, checked; else FloorPlanError."""
    root = site_dir.resolve()
    suffix = Path(name).suffix.lower()
    if suffix not in MEDIA_TYPES:
        raise FloorPlanError(f"{name!r} is not a floor plan image; use a {', '.join(MEDIA_TYPES)} file")
    plan = FloorPlan(building, name, (root / name).resolve(), root, MEDIA_TYPES[suffix])
    _check(plan, _read(plan))
    return plan


def read(plan: FloorPlan) -> bytes:
    """The plan's bytes, checked again as at load time."""
    data = _read(plan)
    _check(plan, data)
    return data


def _read(plan: FloorPlan) -> bytes:
    where = f"the site file's folder {plan.root}"
    target = (plan.root / plan.name).resolve()
    if not target.is_relative_to(plan.root):
        raise FloorPlanError(
            f"{plan.name!r} leads outside {where} (through a symbolic link); copy the image into that folder"
        )
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise FloorPlanError(
            f"{plan.name!r} does not exist in {where}; put the image there or remove floor_plan from the building"
        ) from None
    except OSError as exc:
        raise FloorPlanError(
            f"{plan.name!r} cannot be read ({exc.strerror}); check the file and its permissions"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FloorPlanError(f"{plan.name!r} is not a file; name an image file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise FloorPlanError(
            f"{plan.name!r} is larger than {MAX_BYTES // (1024 * 1024)} MB; export a smaller "
            "image (an SVG, or a PNG/JPEG of about 2000 pixels across is plenty)"
        )
    return data


def _check(plan: FloorPlan, data: bytes) -> None:
    suffix = Path(plan.name).suffix.lower()
    if not data:
        raise FloorPlanError(f"{plan.name!r} is empty; export the floor plan again")
    if not _looks_like(suffix, data):
        kind = _KIND[suffix]
        raise FloorPlanError(
            f"{plan.name!r} is not a {kind} image (its content does not match its name); "
            f"export the plan as {kind} or rename it to what it is"
        )


def _looks_like(suffix: str, data: bytes) -> bool:
    if suffix == ".png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if suffix in (".jpg", ".jpeg"):
        return data.startswith(b"\xff\xd8\xff")
    if suffix == ".webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return "<svg" in text
