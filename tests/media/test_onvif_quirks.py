"""Camera quirks the ONVIF client handles, each against the simulator flag that has it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from camera_adapters.onvif import OnvifAuthError, probe_camera

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cret-Pa55"
MAIN = "rtsp://10.0.0.7:554/Streaming/Channels/101"
SUB = "rtsp://10.0.0.7:554/Streaming/Channels/102"


def sightline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def test_clock_behind_a_bare_401_is_read_with_credentials(onvif_camera) -> None:
    """HTTP 401 without WWW-Authenticate to an unauthenticated GetSystemDateAndTime means
    "send credentials", not "your credentials are wrong": none were sent."""
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, clock_offset=3.0, clock_needs_credentials=True)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert (camera.main_uri, camera.sub_uri) == (MAIN, SUB)
    assert camera.snapshot_uri == sim.snapshot_url
    assert abs(camera.clock_offset - 3.0) < 1.5
    assert sim.calls["GetSystemDateAndTime"] == 2
    assert sim.auth_failures == ["no UsernameToken"]


async def test_clock_behind_a_bare_401_with_a_wrong_password(onvif_camera) -> None:
    sim = onvif_camera.start(password=PASSWORD, clock_needs_credentials=True, clock_offset=0.0)
    with pytest.raises(OnvifAuthError) as info:
        await probe_camera(sim.host, sim.port, "admin", "Wr0ng-Guess-42")
    message = str(info.value)
    assert "refused the credentials" in message and "HTTP 401" in message
    assert "Wr0ng-Guess-42" not in message and PASSWORD not in message
    assert sim.auth_failures == ["no UsernameToken", "bad username or digest", "bad username or digest"]


async def test_clock_behind_a_bare_401_and_far_off_names_the_clock(onvif_camera) -> None:
    """The one case the client cannot fix: no clock without credentials, and credentials
    refused because of the clock. The message says so instead of blaming the password."""
    sim = onvif_camera.start(password=PASSWORD, clock_needs_credentials=True, clock_offset=120.0)
    with pytest.raises(OnvifAuthError, match="enable NTP on the camera"):
        await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert all("Created" in why for why in sim.auth_failures[1:])


async def test_http_digest_in_front_of_soap(onvif_camera) -> None:
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, soap_digest=True)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert (camera.main_uri, camera.sub_uri) == (MAIN, SUB)
    assert abs(camera.clock_offset - 120.0) < 1.5
    assert set(sim.auth_failures) == {"HTTP Digest required"}  # challenged, then answered
    with pytest.raises(OnvifAuthError, match="refused the credentials"):
        await probe_camera(sim.host, sim.port, "admin", "nope-nope")


def test_cameras_add_onvif_device_with_bare_401_clock(site_file, onvif_camera) -> None:
    """``sightline cameras add --onvif`` adds the device with the right password (both
    stream URIs) and refuses it with a wrong one."""
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, clock_offset=0.0, clock_needs_credentials=True)
    path = site_file()
    common = (
        "cameras",
        "add",
        "--config",
        str(path),
        "--building",
        "lincoln-hs",
        "--zone",
        "gym",
        "--onvif",
        f"127.0.0.1:{sim.port}",
        "--username",
        "admin",
    )

    added = sightline(*common, "--name", "Gym east", env={"SIGHTLINE_CAMERA_PASSWORD": PASSWORD})
    assert added.returncode == 0, added.stderr
    site_text = path.read_text()
    assert f'main = "{MAIN}"' in site_text and f'sub = "{SUB}"' in site_text
    assert PASSWORD not in site_text + added.stdout + added.stderr

    wrong = sightline(*common, "--name", "Gym west", "--password", "nope")
    assert wrong.returncode == 2
    assert "refused the credentials" in wrong.stderr and "Gym west" not in path.read_text()
