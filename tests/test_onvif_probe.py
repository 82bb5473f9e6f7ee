"""probe_camera and fetch_snapshot against the strict ONVIF simulator over real sockets."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from camera_adapters.onvif import (OnvifAuthError, OnvifUnreachable, fetch_snapshot,
                                   probe_camera)
from camera_adapters.onvif import ops
from camera_adapters.onvif.soap import SoapFault, call
from camera_adapters.onvif.wsse import security_header
from tests.conftest_media import free_port

pytestmark = pytest.mark.timeout(15)

PASSWORD = "s3cret-Pa55"
MAIN = "rtsp://10.0.0.7:554/Streaming/Channels/101"
SUB = "rtsp://10.0.0.7:554/Streaming/Channels/102"


async def test_probe_camera_two_minutes_off(onvif_camera) -> None:
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, clock_offset=120.0)
    started = time.monotonic()
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert time.monotonic() - started < 5
    assert camera.info.manufacturer == "Sightline Labs"
    assert (camera.info.model, camera.info.firmware, camera.info.serial) == (
        "SL-CAM-1000", "2.4.1", "SIM0001")
    assert {(p.token, p.encoding, p.width, p.height, p.fps) for p in camera.profiles} == {
        ("main", "H264", 1280, 720, 25.0), ("sub", "H264", 640, 360, 15.0)}
    assert (camera.main_profile, camera.sub_profile) == ("main", "sub")
    assert (camera.main_uri, camera.sub_uri) == (MAIN, SUB)
    assert camera.snapshot_uri == sim.snapshot_url
    assert abs(camera.clock_offset - 120.0) < 1.5
    assert sim.auth_failures == []
    assert sim.calls["GetSystemDateAndTime"] == 1
    assert sim.calls["GetStreamUri"] == 2
    assert sim.calls["GetProfiles"] == sim.calls["GetSnapshotUri"] == 1


async def test_wrong_password_is_reported_without_leaking_it(onvif_camera, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    sim = onvif_camera.start(password=PASSWORD)
    wrong = "Wr0ng-Guess-42"
    with pytest.raises(OnvifAuthError) as info:
        await probe_camera(sim.host, sim.port, "admin", wrong)
    message = str(info.value)
    assert "refused the credentials" in message and "'admin'" in message
    for secret in (wrong, PASSWORD):
        assert secret not in message and secret not in repr(info.value)
        assert secret not in caplog.text
    assert sim.auth_failures == ["bad username or digest"]


async def test_probe_logs_no_password(onvif_camera, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    sim = onvif_camera.start(password=PASSWORD)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    await fetch_snapshot(camera.snapshot_uri or "", "admin", PASSWORD)
    assert PASSWORD not in caplog.text


async def test_created_must_follow_the_camera_clock(onvif_camera) -> None:
    """Without the skew correction the same credentials are refused."""
    sim = onvif_camera.start(password=PASSWORD, clock_offset=120.0)
    async with httpx.AsyncClient() as client:
        naive = security_header("admin", PASSWORD, clock_offset=0.0)
        with pytest.raises(SoapFault) as info:
            await call(client, sim.device_url, ops.get_device_information(), naive)
        assert info.value.subcodes == ("NotAuthorized",) and info.value.is_auth
        assert "Created" in sim.auth_failures[-1]

        corrected = security_header("admin", PASSWORD, clock_offset=120.0)
        answer = await call(client, sim.device_url, ops.get_device_information(), corrected)
        assert ops.read_device_information(answer).serial == "SIM0001"

        with pytest.raises(SoapFault):
            await call(client, sim.device_url, ops.get_device_information(), corrected)
        assert sim.auth_failures[-1] == "replayed nonce"


async def test_schema_invalid_request_gets_a_fault(onvif_camera) -> None:
    sim = onvif_camera.start(password=PASSWORD)
    body = ops.get_stream_uri("main")
    body.append(body[0])  # StreamSetup after ProfileToken: wrong order per media.wsdl
    header = security_header("admin", PASSWORD, clock_offset=120.0)
    async with httpx.AsyncClient() as client:
        with pytest.raises(SoapFault) as info:
            await call(client, sim.device_url.replace("device", "media"), body, header)
        assert (info.value.code, info.value.subcodes) == ("Sender", ("InvalidArgs",))
        assert "StreamSetup" in info.value.reason or "ProfileToken" in info.value.reason

        bogus = ops.request("http://www.onvif.org/ver10/device/wsdl", "GetCapabilities",
                            Category="Everything")
        with pytest.raises(SoapFault, match="InvalidArgs"):
            await call(client, sim.device_url, bogus)
    assert sim.auth_failures == []


async def test_old_firmware_without_get_services_or_snapshots(onvif_camera) -> None:
    """GetCapabilities fallback, a NAT'd media XAddr, and a faulting GetSnapshotUri."""
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, get_services=False, snapshot=False)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert (camera.main_uri, camera.sub_uri, camera.snapshot_uri) == (MAIN, SUB, None)
    assert sim.calls["GetServices"] == sim.calls["GetCapabilities"] == 1
    assert sim.calls["GetProfiles"] == 1


async def test_stream_uris_lose_embedded_credentials(onvif_camera) -> None:
    sim = onvif_camera.start("rtsp://admin:hunter2@10.0.0.7/main", SUB, password=PASSWORD)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert camera.main_uri == "rtsp://10.0.0.7/main"


async def test_fetch_snapshot_with_digest(onvif_camera) -> None:
    sim = onvif_camera.start(password=PASSWORD)
    jpeg = await fetch_snapshot(sim.snapshot_url, "admin", PASSWORD)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert sim.calls["Snapshot"] == 2
    with pytest.raises(OnvifAuthError) as info:
        await fetch_snapshot(sim.snapshot_url, "admin", "nope-nope")
    assert "nope-nope" not in str(info.value)


async def test_unreachable_camera() -> None:
    port = free_port()
    with pytest.raises(OnvifUnreachable, match=f"127.0.0.1:{port}"):
        await probe_camera("127.0.0.1", port, "admin", PASSWORD, timeout=2.0)


@pytest.mark.rtsp
async def test_probe_reports_the_rtsp_cameras(rtsp_camera, onvif_camera) -> None:
    main = rtsp_camera.start("h264", width=1280, height=720)
    sub = rtsp_camera.start("h264", width=640, height=360)
    sim = onvif_camera.start(main.url, sub.url, password=PASSWORD)
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert (camera.main_uri, camera.sub_uri) == (main.url, sub.url)
