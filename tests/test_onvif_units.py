"""Pure pieces of the ONVIF client: stream choice, camera clocks, UsernameToken digest."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

from lxml import etree

from camera_adapters.onvif import MediaProfile, choose_streams
from camera_adapters.onvif.clock import camera_utc
from camera_adapters.onvif.wsse import password_digest, security_header


def profile(token: str, encoding: str | None, w: int | None, h: int | None) -> MediaProfile:
    return MediaProfile(token, token, encoding, w, h, 25.0 if encoding else None)


def test_main_prefers_h264_then_resolution_sub_is_smallest() -> None:
    profiles = (profile("mjpeg4k", "JPEG", 3840, 2160), profile("sub", "H264", 640, 360),
                profile("main", "H264", 1920, 1080), profile("mid", "H264", 1280, 720),
                profile("meta", None, None, None))
    main, sub = choose_streams(profiles)
    assert (main.token, sub and sub.token) == ("main", "sub")


def test_single_profile_has_no_sub_and_encoderless_profiles_are_a_last_resort() -> None:
    assert choose_streams((profile("only", "H265", 1920, 1080), profile("audio", None, None,
                                                                         None))) == (
        profile("only", "H265", 1920, 1080), None)
    main, sub = choose_streams((profile("a", None, None, None),))
    assert main.token == "a" and sub is None


def _clock(xml: str) -> datetime | None:
    ns = 'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"'
    return camera_utc(etree.fromstring(
        f"<tds:GetSystemDateAndTimeResponse {ns}><tds:SystemDateAndTime>{xml}"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"))


def _dt(y: int, mo: int, d: int, h: int, mi: int, s: int) -> str:
    return (f"<tt:Time><tt:Hour>{h}</tt:Hour><tt:Minute>{mi}</tt:Minute><tt:Second>{s}"
            f"</tt:Second></tt:Time><tt:Date><tt:Year>{y}</tt:Year><tt:Month>{mo}</tt:Month>"
            f"<tt:Day>{d}</tt:Day></tt:Date>")


def test_camera_clock_variants() -> None:
    utc = datetime(2025, 3, 1, 12, 0, 5, tzinfo=timezone.utc)
    assert _clock(f"<tt:UTCDateTime>{_dt(2025, 3, 1, 12, 0, 5)}</tt:UTCDateTime>") == utc
    local_only = (f"<tt:DaylightSavings>true</tt:DaylightSavings><tt:TimeZone><tt:TZ>"
                  f"EST5EDT,M3.2.0,M11.1.0</tt:TZ></tt:TimeZone><tt:LocalDateTime>"
                  f"{_dt(2025, 3, 1, 8, 0, 5)}</tt:LocalDateTime>")
    assert _clock(local_only) == utc
    assert _clock(f"<tt:UTCDateTime>{_dt(2025, 0, 1, 24, 0, 0)}</tt:UTCDateTime>") is None
    assert _clock("") is None


def test_password_digest_and_header() -> None:
    nonce, created = b"0123456789abcdef", "2025-03-01T12:00:05Z"
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"pw").digest()).decode()
    assert password_digest(nonce, created, "pw") == expected
    header = security_header("admin", "pw", clock_offset=120.0, now=lambda: 1_700_000_000.4)
    created_el = header.find(".//{*}Created")
    assert created_el is not None and created_el.text == "2023-11-14T22:15:20Z"
    assert b"pw<" not in etree.tostring(header)
