"""The command-line contract: demo start-up time, token issuance, audit verify."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_demo_answers_healthz_within_10_seconds(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        elapsed = None
        while time.monotonic() - started < 10:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                if r.status_code == 200:
                    elapsed = time.monotonic() - started
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        assert elapsed is not None, "demo did not answer /healthz within 10 s"
        assert r.json()["status"] == "ok" and r.json()["cameras"] >= 6
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    for account in ("admin", "principal", "dispatcher", "officer", "outsider", "auditor"):
        assert f"    {account} " in out, out
    assert (tmp_path / "site.toml").exists() and (tmp_path / "sightline.db").exists()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60)


def test_token_is_audited_and_unknown_user_refused(site_file) -> None:
    config = str(site_file())
    ok = run("token", "--config", config, "--user", "officer", "--ttl", "120")
    assert ok.returncode == 0 and ok.stdout.count(".") == 2, ok.stderr
    bad = run("token", "--config", config, "--user", "mallory")
    assert bad.returncode == 2 and "mallory" in bad.stderr
    verify = run("audit", "verify", "--config", config)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout
    from gateway.config import load_config
    from gateway.runtime import open_domain

    store, audit, _ = open_domain(load_config(config))
    issued = [e for e in audit.entries() if e.event_type == "auth.token_issued"]
    store.close()
    assert [e.outcome for e in issued] == ["success", "failure"]
    assert ok.stdout.strip() not in str([e.details for e in issued])


def test_bad_site_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("[district\n")
    result = run("audit", "verify", "--config", str(path))
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    missing = run("audit", "verify", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "no such site file" in missing.stderr


def test_demo_site_file_round_trips_the_sample(tmp_path: Path) -> None:
    import tomllib

    from emergency.sample import sample_site_data
    from gateway.cli.demo import ensure_demo_site

    path = ensure_demo_site(tmp_path)
    data = tomllib.loads(path.read_text())
    assert data.pop("gateway") == {"data_dir": ".", "node": "demo"}
    for account in data["accounts"]:  # demo sign-in credentials (gateway/identity/logins.py), stored hashed/sealed
        assert "password" not in account
        if account.pop("password_hash", None):
            assert account.pop("totp_secret").startswith("enc:v1:")
    assert data == sample_site_data(floor_plans=True)
    plans = [tmp_path / b["floor_plan"] for b in data["buildings"]]
    assert all(p.read_text().startswith("<?xml") for p in plans)
    plans[0].write_text(plans[0].read_text().replace("Gym", "Gymnasium"))
    path.write_text(path.read_text().replace("Lincoln School District 42", "Edited"))
    ensure_demo_site(tmp_path)
    assert "Edited" in path.read_text() and "Gymnasium" in plans[0].read_text()


async def test_site_file_changes_are_audited(site_file) -> None:
    from gateway.config import load_config
    from gateway.runtime import Gateway

    path = site_file()
    for edit in (None, None, ("version = 1", "version = 2")):
        if edit:
            path.write_text(path.read_text().replace(*edit))
        gateway = Gateway(load_config(path))
        await gateway.start()
        await gateway.stop()
    store_gateway = Gateway(load_config(path))
    entries = store_gateway.audit.entries(limit=10_000)
    store_gateway.store.close()
    loaded = [e for e in entries if e.event_type == "config.loaded"]
    changed = [e for e in entries if e.event_type == "config.changed"]
    assert len(loaded) == 3 and len(changed) == 1
    assert changed[0].details["policy_version"] == 2 and changed[0].details["previous_policy_version"] == 1
