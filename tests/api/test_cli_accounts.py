"""``sightline accounts enrol|list``: a district sets real people's passwords and
authenticators from the command line; the site file keeps only the hash and the sealed
secret, the rest of the file is untouched, the enrolment is audited without secrets, and
the person can then sign in over HTTP with exactly those credentials."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.cli.accounts import EnrolError, set_account_keys
from gateway.cli.demo import ensure_demo_site
from gateway.config import load_config
from gateway.identity import totp
from gateway.runtime import open_domain
from tests.web_helpers import CSRF, start_web_gateway, stop

NEW_PASSWORD = "correct horse battery staple"

SITE = """# hand-kept comment
[[accounts]]
id = "officer"   # Dana
name = "Officer"
password_hash = "old"

[[accounts]]
id = "auditor"
name = "Auditor"

[policy]
x = 1
"""


def test_set_account_keys_replaces_adds_and_keeps_the_rest() -> None:
    text = set_account_keys(SITE, "officer", {"password_hash": "new", "totp_secret": "enc:v1:s"})
    assert text.count("password_hash") == 1 and 'password_hash = "new"' in text
    assert text.index('totp_secret = "enc:v1:s"') < text.index('[[accounts]]\nid = "auditor"')
    assert "# hand-kept comment" in text and 'id = "officer"   # Dana' in text and "[policy]\nx = 1" in text
    last = set_account_keys(SITE, "auditor", {"password_hash": "a"})
    assert last.index('password_hash = "a"') < last.index("[policy]")
    assert last.count("password_hash") == 2  # the officer's stays


@pytest.mark.parametrize(
    "text", [SITE.replace('id = "officer"', 'id = "other"'), 'accounts = [{id = "officer", name = "x"}]\n']
)
def test_set_account_keys_refuses_what_it_cannot_find(text: str) -> None:
    with pytest.raises(EnrolError, match="officer"):
        set_account_keys(text, "officer", {"password_hash": "x"})


def sightline(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


async def test_enrolled_officer_signs_in_with_the_new_credentials(tmp_path: Path) -> None:
    site = ensure_demo_site(tmp_path)
    before = site.read_text()
    done = sightline(
        "accounts", "enrol", "--config", str(site), "--user", "officer", "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    secret = next(
        line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.strip().startswith("secret:")
    )
    after = site.read_text()
    assert NEW_PASSWORD not in after and secret not in after
    assert before.splitlines()[0] == after.splitlines()[0]  # the file's header comment stays
    config = load_config(site)
    assert config.logins["officer"].has_totp

    store, audit, _ = open_domain(config)
    try:
        entry = next(e for e in audit.entries(limit=10_000) if e.event_type == "account.enrolled")
    finally:
        store.close()
    assert entry.object == "account:officer" and entry.source == "cli"
    assert secret not in repr(entry) and NEW_PASSWORD not in repr(entry)

    listing = sightline("accounts", "list", "--config", str(site))
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("officer "))
    assert "set" in row and "yes" in row
    assert "client" in next(line for line in listing.stdout.splitlines() if line.startswith("records "))

    wg, server, task = await start_web_gateway(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=wg.base_url) as client:
            old = await client.post(
                "/api/v1/auth/login",
                headers=CSRF,
                json={
                    "username": "officer",
                    "password": wg.logins["officer"]["password"],
                    "totp": totp.code_at(secret, time.time()),
                },
            )
            assert old.status_code == 401, old.text
            ok = await client.post(
                "/api/v1/auth/login",
                headers=CSRF,
                json={"username": "officer", "password": NEW_PASSWORD, "totp": totp.code_at(secret, time.time())},
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["mfa"] is True
    finally:
        await stop(server, task)


@pytest.mark.parametrize(
    "user, stdin, message",
    [
        ("officer", "short\n", "at least 12 characters"),
        ("records", NEW_PASSWORD + "\n", "client secret"),
        ("nobody", NEW_PASSWORD + "\n", "no account 'nobody'"),
    ],
)
def test_enrol_refusals_change_nothing(tmp_path: Path, user: str, stdin: str, message: str) -> None:
    site = ensure_demo_site(tmp_path)
    before = site.read_text()
    done = sightline("accounts", "enrol", "--config", str(site), "--user", user, "--password-stdin", stdin=stdin)
    assert done.returncode == 2
    assert message in done.stderr
    assert site.read_text() == before
