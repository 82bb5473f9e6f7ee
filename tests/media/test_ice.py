"""STUN/TURN for viewers: the site file lists the servers, TURN only with a sealed shared
secret; a viewer gets short-lived TURN REST credentials made for it; and an aiortc viewer
allowed to use nothing but a real coturn relay, with exactly those credentials, decodes
live video (so coturn accepted them)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from gateway.config import ConfigError, load_config
from gateway.identity.credentials import CredentialBox
from gateway.media.ice import IceConfigError, parse_ice_servers, turn_credentials
from tests.conftest import free_port
from tests.system_deps import missing
from tests.web_helpers import LOCKDOWN
from tests.whep_client import WhepViewer

TURN_SECRET = "coturn-shared-secret-for-tests"


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    username, credential = turn_credentials("s3cret", "officer", 1_900_000_000)
    assert username == "1900000000:officer"
    expected = hmac.new(b"s3cret", b"1900000000:officer", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"urls": ["turn:turn.example:3478"]}, "TURN needs auth_secret"),
        ({"urls": ["turn:turn.example:3478"], "auth_secret": "plain"}, "plain text"),
        ({"urls": ["stun:stun.example"], "auth_secret": "enc:v1:x"}, "only for turn"),
        ({"urls": ["http://turn.example"]}, "not a stun:"),
        ({"urls": []}, "non-empty list"),
        ({"urls": ["turn:t:3478"], "auth_secret": "enc:v1:x", "credential": "pw"}, "unknown keys"),
        ("stun:stun.example", "must be a table"),
    ],
)
def test_bad_ice_server_entries_are_refused_with_what_to_write(raw, message: str) -> None:
    with pytest.raises(IceConfigError, match=message):
        parse_ice_servers([raw], "site.toml: [gateway]")


def with_ice(site: Path, servers_toml: str, ttl: int | None = None) -> Path:
    text = site.read_text()
    extra = servers_toml + (f"ice_credential_ttl_seconds = {ttl}\n" if ttl else "")
    site.write_text(text.replace("[gateway]\n", "[gateway]\n" + extra, 1))
    return site


def sealed(site_dir: Path, value: str) -> str:
    return CredentialBox.for_dir(site_dir / "secrets").seal(value)


def test_config_error_names_the_setting(site_file) -> None:
    path = with_ice(site_file(), 'ice_servers = [{urls = ["turn:t.example:3478"]}]\n')
    with pytest.raises(ConfigError, match="auth_secret"):
        load_config(path)
    path = with_ice(site_file(), "ice_credential_ttl_seconds = 5\n")
    with pytest.raises(ConfigError, match="ice_credential_ttl_seconds"):
        load_config(path)


async def test_viewer_gets_short_lived_credentials_made_for_it(site_file, run_gateway, tmp_path) -> None:
    path = site_file()
    secret = sealed(tmp_path, TURN_SECRET)
    with_ice(
        path,
        f'ice_servers = [{{urls = ["stun:stun.example:3478"]}}, '
        f'{{urls = ["turn:turn.example:3478?transport=udp"], auth_secret = "{secret}"}}]\n',
        ttl=600,
    )
    gw = await run_gateway(path)
    async with gw.client("officer") as officer:
        before = int(time.time())
        r = await officer.get("/api/v1/ice-servers")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        stun, turn = r.json()["iceServers"]
        assert stun == {"urls": ["stun:stun.example:3478"]}
        expiry, user = turn["username"].split(":")
        assert user == "officer" and before + 600 <= int(expiry) <= int(time.time()) + 600
        assert turn["credential"] == turn_credentials(TURN_SECRET, "officer", int(expiry))[1]
        assert TURN_SECRET not in r.text
    async with gw.client() as anonymous:
        assert (await anonymous.get("/api/v1/ice-servers")).status_code == 401
    async with gw.client("records") as records:
        refused = await records.get("/api/v1/ice-servers")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


# ------------------------------------------------------------------ a real coturn relay


@pytest.fixture
def coturn(tmp_path):
    binary = shutil.which("turnserver")
    if binary is None:
        missing("coturn is not installed (Debian package coturn; scripts/test installs it)")
    port = free_port()
    low = 40000 + (port % 1000) * 20
    log = tmp_path / "turnserver.log"
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=sightline.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--min-port={low}",
            f"--max-port={low + 19}",
            f"--log-file={log}",
            "--simple-log",
            "--pidfile=" + str(tmp_path / "t.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"turnserver exited: {log.read_text() if log.exists() else ''}")
        time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


async def test_viewer_through_coturn_relay_only(site_file, run_gateway, tmp_path, coturn) -> None:
    path = site_file()
    secret = sealed(tmp_path, TURN_SECRET)
    with_ice(path, f'ice_servers = [{{urls = ["turn:127.0.0.1:{coturn}?transport=udp"], auth_secret = "{secret}"}}]\n')
    gw = await run_gateway(path)
    async with gw.client("officer") as officer, gw.client("admin") as admin:
        created = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        assert (await admin.post(f"/api/v1/emergencies/{created.json()['id']}/confirm")).json()["state"] == "active"
        servers = (await officer.get("/api/v1/ice-servers")).json()["iceServers"]
    config = RTCConfiguration(
        iceServers=[RTCIceServer(**s) for s in servers], iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )
    viewer = WhepViewer(gw.base_url, "hs-front", gw.token("officer"), config=config)
    try:
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        offer = viewer.pc.localDescription.sdp
        assert " typ relay" in offer and " typ host" not in offer, offer
        await viewer.wait_frames(10, timeout=20)
        ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
        pair = ice._connection._nominated.get(1)
        assert pair is not None and pair.local_candidate.type == "relay"
    finally:
        await viewer.close()
    await asyncio.sleep(0)


def test_seal_command_output_opens_to_the_secret(site_file, tmp_path) -> None:
    import sys

    path = site_file()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "seal", "--config", str(path)],
        input=TURN_SECRET + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    value = done.stdout.strip()
    assert value.startswith("enc:v1:") and TURN_SECRET not in value
    assert CredentialBox.for_dir(tmp_path / "secrets").open(value) == TURN_SECRET
    empty = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "seal", "--config", str(path)],
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and "empty" in empty.stderr
