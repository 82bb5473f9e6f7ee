"""The demo's site file: the sample district from :mod:`emergency.sample`, written as TOML.

``ensure_demo_site`` also gives every demo account a random password and an enrolled
authenticator (TOTP secret). The site file holds only the scrypt hash and the sealed
secret; the plain values are kept for the demo banner in ``secrets/demo-logins.json``
(owner-only), so a tester can sign in and compute codes (``python -m gateway.totp SECRET``
or any authenticator app fed the otpauth URI).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from emergency.sample import sample_site_data

from . import totp
from .credentials import CredentialBox
from .logins import hash_password
from .toml_writer import to_toml

HEADER = "# Sightline sample district, written by 'sightline demo'. Edit freely; it is reused.\n"
GATEWAY = {"data_dir": ".", "node": "demo"}
LOGINS_FILE = "demo-logins.json"
PEOPLE_ROLES = frozenset({"district_admin", "building_admin", "dispatcher", "officer", "auditor"})


def sample_site_toml(credentials: dict[str, dict[str, str]] | None = None) -> str:
    """The sample district; ``credentials`` maps account id to the stored keys
    (``password_hash``, ``totp_secret``) to put on its ``[[accounts]]`` entry."""
    data = sample_site_data()
    for account in data["accounts"]:
        account.update((credentials or {}).get(account["id"], {}))
    return HEADER + to_toml({"gateway": GATEWAY, **data})


def _demo_password() -> str:
    return "-".join(secrets.token_hex(2) for _ in range(3))  # e.g. 3f9a-07c2-b1e4


def new_demo_logins(secrets_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(plain values for the banner, stored values for the site file), one per sample account."""
    box = CredentialBox.for_dir(secrets_dir)
    plain: dict[str, dict[str, str]] = {}
    stored: dict[str, dict[str, str]] = {}
    for account in sample_site_data()["accounts"]:
        if account.get("role") not in PEOPLE_ROLES:
            continue  # e.g. a records system: it signs in with OAuth2 client credentials, not here
        password, secret = _demo_password(), totp.new_secret()
        plain[account["id"]] = {"password": password, "totp_secret": secret}
        stored[account["id"]] = {"password_hash": hash_password(password), "totp_secret": box.seal(secret)}
    return plain, stored


def ensure_demo_site(data_dir: Path) -> Path:
    """Writes ``DIR/site.toml`` unless it exists, so edits and state survive restarts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "site.toml"
    if not path.exists():
        secrets_dir = data_dir / "secrets"
        plain, stored = new_demo_logins(secrets_dir)
        logins_path = secrets_dir / LOGINS_FILE
        logins_path.unlink(missing_ok=True)
        fd = os.open(logins_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(plain, fh, indent=2)
        path.write_text(sample_site_toml(stored), encoding="utf-8")
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
        return [f"  web sign-in: {base_url}/signin  (this site file has no demo passwords; "
                "delete site.toml to have new ones written)"]
    lines = [f"  web sign-in: {base_url}/signin   (password + 6-digit code; code now: "
             "python -m gateway.totp <secret>)"]
    for account_id, values in logins.items():
        lines.append(f"    {account_id:<11} password {values['password']}   TOTP secret {values['totp_secret']}")
    return lines
