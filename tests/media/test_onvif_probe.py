"""probe_camera and fetch_snapshot against the strict ONVIF simulator over real sockets."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from lxml import etree
from zeep.exceptions import Fault
from zeep.plugins import HistoryPlugin

from camera_adapters.onvif import OnvifAuthError, OnvifUnreachable, fetch_snapshot, library, probe_camera
from tests.conftest_media import free_port

pytestmark = pytest.mark.timeout(15)

PASSWORD = "s3cret-Pa55"
MAIN = "rtsp://10.0.0.7:554/Streaming/Channels/101"
SUB = "rtsp://10.0.0.7:554/Streaming/Channels/102"
SOAP = "application/soap+xml; charset=utf-8"
ENVELOPE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body>{}</s:Body></s:Envelope>'
)


def fault_of(response: httpx.Response) -> tuple[str, str, str]:
    """(code, subcode, reason) of a SOAP 1.2 fault, without prefixes."""
    fault = etree.fromstring(response.content).find(".//{*}Fault")
    assert fault is not None, response.text
    code = fault.findtext("{*}Code/{*}Value") or ""
    sub = fault.findtext("{*}Code/{*}Subcode/{*}Value") or ""
    return code.rpartition(":")[2], sub.rpartition(":")[2], fault.findtext(".//{*}Text") or ""


async def test_probe_camera_two_minutes_off(onvif_camera) -> None:
    sim = onvif_camera.start(MAIN, SUB, password=PASSWORD, clock_offset=120.0)
    started = time.monotonic()
    camera = await probe_camera(sim.host, sim.port, "admin", PASSWORD)
    assert time.monotonic() - started < 5
    assert camera.info.manufacturer == "Sightline Labs"
    assert (camera.info.model, camera.info.firmware, camera.info.serial) == ("SL-CAM-1000", "2.4.1", "SIM0001")
    assert {(p.token, p.encoding, p.width, p.height, p.fps) for p in camera.profiles} == {
        ("main", "H264", 1280, 720, 25.0),
        ("sub", "H264", 640, 360, 15.0),
    }
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
    """Without the skew correction the library's tokens are refused; a replayed one too."""
    sim = onvif_camera.start(password=PASSWORD, clock_offset=120.0)
    naive = library.new_camera(sim.host, sim.port, "admin", PASSWORD, clock_offset=0.0)
    corrected = library.new_camera(sim.host, sim.port, "admin", PASSWORD, clock_offset=120.0)
    try:
        with pytest.raises(Fault) as info:
            await (await naive.create_devicemgmt_service()).GetDeviceInformation()
        assert [code.localname for code in info.value.subcodes] == ["NotAuthorized"]
        assert "Created" in sim.auth_failures[-1]

        service = await corrected.create_devicemgmt_service()
        history = HistoryPlugin()
        service.zeep_client.plugins.append(history)
        assert (await service.GetDeviceInformation()).SerialNumber == "SIM0001"

        sent = etree.tostring(history.last_sent["envelope"])
        assert b"UsernameToken" in sent and PASSWORD.encode() not in sent
        async with httpx.AsyncClient() as client:
            replay = await client.post(sim.device_url, content=sent, headers={"Content-Type": SOAP})
        assert fault_of(replay)[:2] == ("Sender", "NotAuthorized")
        assert sim.auth_failures[-1] == "replayed nonce"
    finally:
        await naive.close()
        await corrected.close()


async def test_schema_invalid_request_gets_a_fault(onvif_camera) -> None:
    sim = onvif_camera.start(password=PASSWORD)
    # StreamSetup after ProfileToken: wrong order per media.wsdl
    misordered = (
        '<GetStreamUri xmlns="http://www.onvif.org/ver10/media/wsdl"><ProfileToken>'
        "main</ProfileToken><StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
        "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></StreamSetup>"
        "</GetStreamUri>"
    )
    bogus = (
        '<GetCapabilities xmlns="http://www.onvif.org/ver10/device/wsdl"><Category>'
        "Everything</Category></GetCapabilities>"
    )
    async with httpx.AsyncClient(headers={"Content-Type": SOAP}) as client:
        answer = await client.post(sim.device_url.replace("device", "media"), content=ENVELOPE.format(misordered))
        code, subcode, reason = fault_of(answer)
        assert (code, subcode) == ("Sender", "InvalidArgs")
        assert "StreamSetup" in reason or "ProfileToken" in reason

        answer = await client.post(sim.device_url, content=ENVELOPE.format(bogus))
        assert fault_of(answer)[1] == "InvalidArgs"
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
