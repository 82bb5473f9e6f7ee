"""probe_camera: from address and credentials to the streams the gateway should ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..urls import redact
from . import ops
from .choice import choose_streams
from .clock import camera_utc
from .http_auth import CameraAuth
from .model import MediaProfile, OnvifAuthError, OnvifCamera, OnvifError, OnvifUnreachable
from .soap import AUTH_HINT, SoapFault, call
from .wsse import security_header
from .xmlread import Element

log = logging.getLogger(__name__)

SKEW_WARNING_SECONDS = 5.0


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _same_door(xaddr: str, device_url: str) -> str:
    """``xaddr`` re-pointed at the host:port we reached: behind NAT cameras advertise LAN
    addresses (or 0.0.0.0) that we cannot reach; the path is what matters."""
    parts = urlsplit(xaddr)
    return urlunsplit(parts._replace(scheme=urlsplit(device_url).scheme,
                                     netloc=urlsplit(device_url).netloc))


def _without_userinfo(uri: str | None) -> str | None:
    return redact(uri) if uri else None


class _Session:
    """Authenticated calls to one camera, all stamped on the camera's clock."""

    def __init__(self, client: httpx.AsyncClient, where: str, username: str,
                 password: str) -> None:
        self.client, self.where = client, where
        self._username, self._password = username, password
        self.clock_offset = 0.0

    async def call(self, url: str, body: Element) -> Element:
        header = security_header(self._username, self._password, clock_offset=self.clock_offset)
        try:
            return await call(self.client, url, body, header)
        except SoapFault as fault:
            if fault.is_auth:
                raise OnvifAuthError(
                    f"camera at {self.where} refused the credentials for user "
                    f"{self._username!r} ({fault.operation}: {fault.reason or fault.code}); "
                    + AUTH_HINT) from None
            raise

    async def measure_clock(self, device_url: str) -> None:
        """GetSystemDateAndTime unauthenticated; some firmwares insist on auth, so retry."""
        before = time.time()
        try:
            response = await call(self.client, device_url, ops.get_system_date_and_time())
        except SoapFault:
            try:
                response = await self.call(device_url, ops.get_system_date_and_time())
            except (SoapFault, OnvifAuthError) as fault:
                log.warning("camera at %s has no readable clock (%s); no skew correction",
                            self.where, fault)
                return
        ours = (before + time.time()) / 2
        theirs = camera_utc(response)
        if theirs is None:
            log.warning("camera at %s reported an unreadable clock; no skew correction",
                        self.where)
            return
        self.clock_offset = theirs.timestamp() + 0.5 - ours  # camera truncates to whole s
        if abs(self.clock_offset) > SKEW_WARNING_SECONDS:
            log.warning("camera at %s clock is %+.0f s off; correcting WS-Security timestamps "
                        "(enable NTP on the camera)", self.where, self.clock_offset)


async def _media_url(session: _Session, device_url: str) -> str:
    """GetServices (ONVIF's recommended way), falling back to GetCapabilities (old firmware)."""
    xaddr = None
    try:
        xaddr = ops.read_media_xaddr_from_services(
            await session.call(device_url, ops.get_services()))
    except SoapFault as fault:
        log.debug("GetServices unsupported at %s (%s); trying GetCapabilities",
                  session.where, fault)
    if not xaddr:
        try:
            xaddr = ops.read_media_xaddr_from_capabilities(
                await session.call(device_url, ops.get_capabilities()))
        except SoapFault as fault:
            raise OnvifError(f"camera at {session.where} did not say where its media service "
                             f"is ({fault}); it may not support ONVIF Profile S") from None
    if not xaddr:
        raise OnvifError(f"camera at {session.where} has no ONVIF media service "
                         "(Profile S); it cannot stream over ONVIF")
    return _same_door(xaddr, device_url)


async def _stream_uri(session: _Session, media_url: str, profile: MediaProfile) -> str | None:
    try:
        uri = ops.read_media_uri(await session.call(media_url, ops.get_stream_uri(profile.token)))
    except SoapFault as fault:
        log.warning("camera at %s gave no stream URI for profile %r: %s",
                    session.where, profile.token, fault)
        return None
    return _without_userinfo(uri)


async def _snapshot_uri(session: _Session, media_url: str, profile: MediaProfile) -> str | None:
    """Many cameras fault or answer empty here; the gateway then grabs a frame instead."""
    try:
        uri = ops.read_media_uri(await session.call(media_url, ops.get_snapshot_uri(profile.token)))
    except SoapFault as fault:
        log.info("camera at %s has no snapshot URI: %s", session.where, fault)
        return None
    return _without_userinfo(uri)


async def _probe(session: _Session, device_url: str) -> OnvifCamera:
    await session.measure_clock(device_url)
    try:
        info = ops.read_device_information(
            await session.call(device_url, ops.get_device_information()))
        media_url = await _media_url(session, device_url)
        profiles = ops.read_profiles(await session.call(media_url, ops.get_profiles()))
    except SoapFault as fault:
        raise OnvifError(f"camera at {session.where}: {fault}") from None
    if not profiles:
        raise OnvifError(f"camera at {session.where} reports no media profiles; "
                         "create one in its web interface")
    main, sub = choose_streams(profiles)
    main_uri = await _stream_uri(session, media_url, main)
    if not main_uri:
        raise OnvifError(f"camera at {session.where} gave no RTSP URI for its main profile "
                         f"{main.token!r}; check that RTSP is enabled")
    sub_uri = await _stream_uri(session, media_url, sub) if sub else None
    return OnvifCamera(
        info=info, profiles=profiles, main_uri=main_uri, sub_uri=sub_uri,
        snapshot_uri=await _snapshot_uri(session, media_url, main),
        clock_offset=session.clock_offset,
        main_profile=main.token, sub_profile=sub.token if sub and sub_uri else None,
    )


async def probe_camera(host: str, port: int, username: str, password: str, *,
                       timeout: float = 10.0) -> OnvifCamera:
    """Ask the camera at ``host:port`` who it is and which RTSP streams to ingest."""
    where = _netloc(host, port)
    device_url = f"http://{where}/onvif/device_service"
    try:
        async with asyncio.timeout(timeout), httpx.AsyncClient(
            auth=CameraAuth(username, password), timeout=timeout, follow_redirects=False,
            trust_env=False,
        ) as client:
            return await _probe(_Session(client, where, username, password), device_url)
    except TimeoutError:
        raise OnvifUnreachable(f"camera at {where} did not finish answering within "
                               f"{timeout:g} s; check the address and ONVIF port") from None
