"""probe_camera: from address and credentials to the streams the gateway should ingest."""

from __future__ import annotations

import asyncio
import logging

from . import library
from .choice import choose_streams
from .fields import field, items, number, text
from .model import DeviceInfo, MediaProfile, OnvifCamera, OnvifError, OnvifUnreachable
from .session import CameraSession, OperationFailed, netloc

log = logging.getLogger(__name__)

_STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


def _device_info(answer: object) -> DeviceInfo:
    return DeviceInfo(
        manufacturer=text(answer, "Manufacturer") or "",
        model=text(answer, "Model") or "",
        firmware=text(answer, "FirmwareVersion") or "",
        serial=text(answer, "SerialNumber") or "",
    )


def _profiles(answer: object) -> tuple[MediaProfile, ...]:
    profiles = []
    for item in items(answer):
        token = text(item, "token")
        if not token:
            continue
        encoder = field(item, "VideoEncoderConfiguration")
        width = number(encoder, "Resolution", "Width")
        height = number(encoder, "Resolution", "Height")
        profiles.append(
            MediaProfile(
                token=token,
                name=text(item, "Name") or token,
                encoding=text(encoder, "Encoding"),
                width=int(width) if width else None,
                height=int(height) if height else None,
                fps=number(encoder, "RateControl", "FrameRateLimit"),
            )
        )
    return tuple(profiles)


async def _media_url(session: CameraSession) -> str:
    """GetServices (ONVIF's recommended way), falling back to GetCapabilities (old firmware)."""
    xaddr = None
    try:
        services = await session.call("devicemgmt", "GetServices", {"IncludeCapability": False})
        xaddr = next((text(s, "XAddr") for s in items(services) if text(s, "Namespace") == library.MEDIA_NS), None)
    except OperationFailed as fault:
        log.debug("GetServices unsupported at %s (%s); trying GetCapabilities", session.where, fault)
    if not xaddr:
        try:
            capabilities = await session.call("devicemgmt", "GetCapabilities", {"Category": "Media"})
        except OperationFailed as fault:
            raise OnvifError(
                f"camera at {session.where} did not say where its media service "
                f"is ({fault}); it may not support ONVIF Profile S"
            ) from None
        xaddr = text(capabilities, "Media", "XAddr")
    media_url = session.same_door(xaddr) if xaddr else None
    if not media_url:
        raise OnvifError(
            f"camera at {session.where} has no ONVIF media service (Profile S); it cannot stream over ONVIF"
        )
    return media_url


async def _stream_uri(session: CameraSession, profile: MediaProfile) -> str | None:
    try:
        answer = await session.call(
            "media", "GetStreamUri", {"StreamSetup": _STREAM_SETUP, "ProfileToken": profile.token}
        )
    except OperationFailed as fault:
        log.warning("camera at %s gave no stream URI for profile %r: %s", session.where, profile.token, fault)
        return None
    uri = text(answer, "Uri")
    return library.without_credentials(uri) if uri else None


async def _snapshot_uri(session: CameraSession, profile: MediaProfile) -> str | None:
    """Many cameras fault or answer empty here; the gateway then grabs a frame instead."""
    try:
        answer = await session.call("media", "GetSnapshotUri", {"ProfileToken": profile.token})
    except OperationFailed as fault:
        log.info("camera at %s has no snapshot URI: %s", session.where, fault)
        return None
    uri = text(answer, "Uri")
    return library.without_credentials(uri) if uri else None


async def _probe(session: CameraSession) -> OnvifCamera:
    await session.measure_clock()
    try:
        info = _device_info(await session.call("devicemgmt", "GetDeviceInformation"))
        session.media_url = await _media_url(session)
        profiles = _profiles(await session.call("media", "GetProfiles"))
    except OperationFailed as fault:
        raise OnvifError(f"camera at {session.where}: {fault}") from None
    if not profiles:
        raise OnvifError(f"camera at {session.where} reports no media profiles; create one in its web interface")
    main, sub = choose_streams(profiles)
    main_uri = await _stream_uri(session, main)
    if not main_uri:
        raise OnvifError(
            f"camera at {session.where} gave no RTSP URI for its main profile "
            f"{main.token!r}; check that RTSP is enabled"
        )
    sub_uri = await _stream_uri(session, sub) if sub else None
    return OnvifCamera(
        info=info,
        profiles=profiles,
        main_uri=main_uri,
        sub_uri=sub_uri,
        snapshot_uri=await _snapshot_uri(session, main),
        clock_offset=session.clock_offset,
        main_profile=main.token,
        sub_profile=sub.token if sub and sub_uri else None,
    )


async def probe_camera(host: str, port: int, username: str, password: str, *, timeout: float = 10.0) -> OnvifCamera:
    """Ask the camera at ``host:port`` who it is and which RTSP streams to ingest."""
    session = CameraSession(host, port, username, password)
    try:
        async with asyncio.timeout(timeout):
            return await _probe(session)
    except TimeoutError:
        raise OnvifUnreachable(
            f"camera at {netloc(host, port)} did not finish answering "
            f"within {timeout:g} s; check the address and ONVIF port"
        ) from None
    finally:
        await session.close()
