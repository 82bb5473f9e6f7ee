"""Pure pieces of the ONVIF client: stream choice, camera clocks, the library's token."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from camera_adapters.onvif import MediaProfile, choose_streams
from camera_adapters.onvif.clock import camera_utc
from camera_adapters.onvif.library import new_camera


def profile(token: str, encoding: str | None, w: int | None, h: int | None) -> MediaProfile:
    return MediaProfile(token, token, encoding, w, h, 25.0 if encoding else None)


def test_main_prefers_h264_then_resolution_sub_is_smallest() -> None:
    profiles = (
        profile("mjpeg4k", "JPEG", 3840, 2160),
        profile("sub", "H264", 640, 360),
        profile("main", "H264", 1920, 1080),
        profile("mid", "H264", 1280, 720),
        profile("meta", None, None, None),
    )
    main, sub = choose_streams(profiles)
    assert (main.token, sub and sub.token) == ("main", "sub")


def test_single_profile_has_no_sub_and_encoderless_profiles_are_a_last_resort() -> None:
    assert choose_streams((profile("only", "H265", 1920, 1080), profile("audio", None, None, None))) == (
        profile("only", "H265", 1920, 1080),
        None,
    )
    main, sub = choose_streams((profile("a", None, None, None),))
    assert main.token == "a" and sub is None


def _clock(**system_date_and_time: Any) -> datetime | None:
    """``camera_utc`` of a SystemDateAndTime as zeep's ``serialize_object`` gives it."""
    return camera_utc(system_date_and_time)


def _dt(y: int, mo: int, d: int, h: int, mi: int, s: int) -> dict[str, dict[str, int]]:
    return {"Time": {"Hour": h, "Minute": mi, "Second": s}, "Date": {"Year": y, "Month": mo, "Day": d}}


def test_camera_clock_variants() -> None:
    utc = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert _clock(UTCDateTime=_dt(2025, 3, 1, 12, 0, 5)) == utc
    local_only = {
        "DaylightSavings": True,
        "TimeZone": {"TZ": "EST5EDT,M3.2.0,M11.1.0"},
        "UTCDateTime": None,
        "LocalDateTime": _dt(2025, 3, 1, 8, 0, 5),
    }
    assert _clock(**local_only) == utc
    assert _clock(UTCDateTime=_dt(2025, 0, 1, 24, 0, 0)) is None
    assert _clock() is None


async def test_library_token_is_a_digest_on_the_camera_clock() -> None:
    """What the probe relies on from onvif-zeep-async: PasswordDigest, whole Zulu seconds
    (Hikvision rejects fractions and +00:00), ``Created`` shifted by the clock offset."""
    camera = new_camera("127.0.0.1", 9, "admin", "pw", clock_offset=120.0)
    try:
        service = await camera.create_devicemgmt_service()
        envelope = etree.fromstring(
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/><s:Body/></s:Envelope>'
        )
        before = time.time()
        service.zeep_client.wsse.apply(envelope, {})
    finally:
        await camera.close()
    token = envelope.find(".//{*}UsernameToken")
    assert token is not None
    created = token.findtext("{*}Created") or ""
    nonce = base64.b64decode(token.findtext("{*}Nonce") or "")
    password = token.find("{*}Password")
    assert password is not None and password.get("Type", "").endswith("#PasswordDigest")
    assert created.endswith("Z") and "." not in created and "+" not in created
    stamp = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    assert before + 119 <= stamp <= time.time() + 121
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"pw").digest())
    assert password.text == expected.decode()
    assert b"pw<" not in etree.tostring(envelope)
