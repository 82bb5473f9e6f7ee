"""The demo's site file: the sample district from :mod:`emergency.sample`, written as TOML.

``ensure_demo_site`` also gives every demo account a random password and an enrolled
authenticator (TOTP secret). The site file holds only the scrypt hash and the sealed
secret; the plain values are kept for the demo banner in ``secrets/demo-logins.json``
(owner-only), so a tester can sign in and compute codes (``python -m gateway.identity.totp SECRET``
or any authenticator app fed the otpauth URI).

It also draws each sample building's floor plan (``plans/<building>.svg``, named by
``floor_plan`` in the site file); like the site file, a plan that exists is kept.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from emergency.permissions import Permission, role_holds
from emergency.sample import FLOOR_PLAN_SIZE, floor_plan_file, sample_floor_plans, sample_site_data
from emergency.site import Role
from gateway.cli.toml_writer import to_toml
from gateway.identity import totp
from gateway.identity.credentials import CredentialBox
from gateway.identity.logins import hash_password

HEADER = "# Sightline sample district, written by 'sightline demo'. Edit freely; it is reused.\n"
GATEWAY = {"data_dir": ".", "node": "demo"}
LOGINS_FILE = "demo-logins.json"


def sample_site_toml(credentials: dict[str, dict[str, str]] | None = None, *, floor_plans: bool = False) -> str:
    """The sample district; ``credentials`` maps account id to the stored keys
    (``password_hash``, ``totp_secret``) to put on its ``[[accounts]]`` entry. With
    ``floor_plans`` each building names its plan image: write those with
    ``write_demo_plans`` into the site file's folder."""
    data = sample_site_data(floor_plans=floor_plans)
    for account in data["accounts"]:
        account.update((credentials or {}).get(account["id"], {}))
    return HEADER + to_toml({"gateway": GATEWAY, **data})


_ROOM_STYLE = {
    # zone -> fill; rooms without a camera zone are plain
    "hallways": "#e4e4e4",
    "entrances": "#fff1b8",
    "exterior": "#dcebd2",
    "restrooms": "#eeeeee",
    "nurse": "#fde2e2",
    "time-out": "#fde2e2",
}


def floor_plan_svg(title: str, rooms: list[tuple[str, str | None, int, int, int, int]]) -> str:
    """A simple plan drawing: labelled rooms (outside areas dashed) on a white page."""
    width, height = FLOOR_PLAN_SIZE
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title, {chr(34): "&quot;"})}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<g font-family="DejaVu Sans, Arial, sans-serif" font-size="24" font-weight="600" fill="#111111">',
    ]
    for label, zone, x, y, w, h in rooms:
        outside = zone == "exterior"
        fill = _ROOM_STYLE.get(zone or "", "#ffffff")
        dash = ' stroke-dasharray="10 8"' if outside else ""
        out.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" stroke="#222222" '
            f'stroke-width="{3 if outside else 4}"{dash}/>'
        )
        lines = label.split("\n")
        size = min(36, int((w - 16) / (0.64 * max(len(line) for line in lines))))  # fits the room's width
        out.append(
            f'<text x="{x + 8}" y="{y + size + 6}" font-size="{size}">'
            + "".join(
                f'<tspan x="{x + 8}" dy="{0 if i == 0 else round(size * 1.2)}">{escape(line)}</tspan>'
                for i, line in enumerate(lines)
            )
            + "</text>"
        )
    out += ["</g>", "</svg>", ""]
    return "\n".join(out)


def write_demo_plans(site_dir: Path) -> list[Path]:
    """Draws each sample building's plan into ``site_dir/plans/`` unless it is there already."""
    names = {b["id"]: b["name"] for b in sample_site_data()["buildings"]}
    written = []
    for building, rooms in sample_floor_plans().items():
        path = site_dir / floor_plan_file(building)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(floor_plan_svg(f"Floor plan of {names[building]}", rooms), encoding="utf-8")
        written.append(path)
    return written


def _demo_password() -> str:
    return "-".join(secrets.token_hex(2) for _ in range(3))  # e.g. 3f9a-07c2-b1e4


def new_demo_logins(secrets_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(plain values for the banner, stored values for the site file), one per sample account."""
    box = CredentialBox.for_dir(secrets_dir)
    plain: dict[str, dict[str, str]] = {}
    stored: dict[str, dict[str, str]] = {}
    for account in sample_site_data()["accounts"]:
        if not role_holds(Role(account["role"]), Permission.SIGN_IN):
            continue  # e.g. a records system: it signs in with OAuth2 client credentials, not here
        password, secret = _demo_password(), totp.new_secret()
        plain[account["id"]] = {"password": password, "totp_secret": secret}
        stored[account["id"]] = {"password_hash": hash_password(password), "totp_secret": box.seal(secret)}
    return plain, stored


def ensure_demo_site(data_dir: Path) -> Path:
    """Writes ``DIR/site.toml`` unless it exists, so edits and state survive restarts, and
    the floor plans it names (``DIR/plans/``) unless they exist."""
    data_dir.mkdir(parents=True, exist_ok=True)
    write_demo_plans(data_dir)
    path = data_dir / "site.toml"
    if not path.exists():
        secrets_dir = data_dir / "secrets"
        plain, stored = new_demo_logins(secrets_dir)
        logins_path = secrets_dir / LOGINS_FILE
        logins_path.unlink(missing_ok=True)
        fd = os.open(logins_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(plain, fh, indent=2)
        path.write_text(sample_site_toml(stored, floor_plans=True), encoding="utf-8")
    return path


def demo_logins(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The demo accounts' plain passwords and TOTP secrets, or {} when there are none."""
    try:
        return json.loads((data_dir / "secrets" / LOGINS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def login_banner(data_dir: Path, base_url: str) -> list[str]:
    """Lines for the demo banner: how to sign in to the pages as each account."""
    logins = demo_logins(data_dir)
    if not logins:
        return [
            f"  web sign-in: {base_url}/signin  (this site file has no demo passwords; "
            "delete site.toml to have new ones written)"
        ]
    lines = [
        f"  web sign-in: {base_url}/signin   (password + 6-digit code; code now: "
        "python -m gateway.identity.totp <secret>)"
    ]
    for account_id, values in logins.items():
        lines.append(f"    {account_id:<11} password {values['password']}   TOTP secret {values['totp_secret']}")
    return lines
