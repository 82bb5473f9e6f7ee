"""Calls to one camera through onvif-zeep-async, stamped on the camera's clock.

Every failure leaves as the package's exception tree (``OnvifError`` and subclasses),
worded for the person installing the camera, except a SOAP fault that is not about
credentials: that is ``OperationFailed``, which the probe may work around.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import aiohttp
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError

from . import library
from .clock import camera_utc
from .model import OnvifAuthError, OnvifError, OnvifUnreachable

log = logging.getLogger(__name__)

Service = Literal["devicemgmt", "media"]
SKEW_WARNING_SECONDS = 5.0
AUTH_HINT = (
    "check the username and password (ONVIF users are often separate from the "
    "camera's web users) and that the user has ONVIF access"
)
CLOCK_HINT = (
    "the camera would not tell its time without credentials, so if the password "
    "is right its clock may be too far from ours: enable NTP on the camera"
)
_AUTH_WORDS = ("notauthorized", "failedauthentication", "auth", "password", "credential", "unauthorized")


class OperationFailed(Exception):
    """The camera answered an operation with a SOAP fault that is not about credentials."""


class CredentialsDemanded(OperationFailed):
    """An unauthenticated request got HTTP 401: the camera wants credentials; it has not
    refused any, since none were sent."""


def _local(code: object) -> str:
    name = getattr(code, "localname", None) or getattr(code, "text", None) or str(code)
    return str(name).rpartition(":")[2]


def _fault_text(fault: Fault) -> str:
    codes = [_local(fault.code or "Fault"), *(_local(s) for s in fault.subcodes or ())]
    return f"{'/'.join(codes)}: {(fault.message or '').strip()}"


def _is_auth(fault: Fault) -> bool:
    """Cameras rarely use ter:NotAuthorized consistently, so the reason text counts too."""
    return any(word in _fault_text(fault).lower() for word in _AUTH_WORDS)


def netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class CameraSession:
    """One camera: its library client, the measured clock offset, its media service."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.host, self.port, self.where = host, port, netloc(host, port)
        self.username = username
        self._password = password
        self.clock_offset = 0.0
        self.clock_needs_credentials = False
        self.media_url: str | None = None
        self._camera: Any = None
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"CameraSession({self.where}, username={self.username!r})"

    async def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            await camera.close()
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def same_door(self, url: str) -> str | None:
        return library.same_door(self._client(), url)

    def _client(self) -> Any:
        if self._camera is None:
            self._camera = library.new_camera(
                self.host, self.port, self.username, self._password, clock_offset=self.clock_offset
            )
        if self.media_url:
            self._camera.xaddrs[library.MEDIA_NS] = self.media_url
        return self._camera

    def _with_http_digest(self, service: Any) -> None:
        """Quirk (HTTP Digest in front of SOAP): some firmwares (Hikvision with ONVIF
        authentication set to "digest", several NVRs) answer SOAP with a Digest challenge
        before they look at WS-Security. The library's transport does no HTTP auth, so
        its requests go through a session that answers a Digest challenge (and only a
        challenge: nothing is sent before the camera asks)."""
        if not self.username:
            return
        if self._http is None:
            self._http = aiohttp.ClientSession(
                middlewares=(aiohttp.DigestAuthMiddleware(self.username, self._password),)
            )
        service.transport.session = self._http

    async def call(
        self, service: Service, operation: str, params: dict[str, object] | None = None, *, authenticated: bool = True
    ) -> object:
        """``operation`` on ``service`` with WS-Security (unless ``authenticated=False``)."""
        camera = self._client()
        try:
            client = await (
                camera.create_devicemgmt_service() if service == "devicemgmt" else camera.create_media_service()
            )
            self._with_http_digest(client)
            method = getattr(client, operation if authenticated else f"authless_{operation}")
            answer: object = await method(params)
            return answer
        except Fault as fault:
            if authenticated and _is_auth(fault):
                raise self._refused(operation, _fault_text(fault)) from None
            raise OperationFailed(f"{operation} failed: {_fault_text(fault)}") from None
        except TransportError as exc:
            raise self._http_error(operation, exc.status_code, authenticated) from None
        except ZeepError:
            raise OnvifError(
                f"{self.where} answered {operation} with XML that is not a SOAP "
                "envelope; it is probably not an ONVIF device"
            ) from None
        except aiohttp.ClientError as exc:
            raise OnvifUnreachable(
                f"cannot reach {self.where} for {operation} "
                f"({type(exc).__name__}); check the address and the "
                "ONVIF port"
            ) from None
        except library.LibraryError as exc:
            raise OnvifError(f"camera at {self.where}: {exc}") from None

    def _refused(self, operation: str, detail: str) -> OnvifAuthError:
        hint = AUTH_HINT + (f"; {CLOCK_HINT}" if self.clock_needs_credentials else "")
        return OnvifAuthError(
            f"camera at {self.where} refused the credentials for user {self.username!r} ({operation}: {detail}); {hint}"
        )

    def _http_error(self, operation: str, status: int, authenticated: bool) -> Exception:
        if status == 401 and authenticated:
            return self._refused(operation, "HTTP 401")
        if status == 401:
            return CredentialsDemanded(f"{operation} needs credentials (HTTP 401)")
        if status == 404:
            return OnvifError(
                f"no ONVIF service at {self.where} (HTTP 404 for {operation}); "
                "check the ONVIF port (often 80, 8000, 8080 or 2020) and that "
                "ONVIF is enabled"
            )
        return OnvifError(
            f"{self.where} answered {operation} with HTTP {status} and no SOAP; "
            "it is probably not an ONVIF device, or ONVIF is disabled"
        )

    async def measure_clock(self) -> None:
        """Read the camera's clock and stamp every later request on it.

        GetSystemDateAndTime is the one operation ONVIF lets a client call without
        credentials, so it is asked first without.
        """
        before = time.time()
        try:
            answer = await self.call("devicemgmt", "GetSystemDateAndTime", authenticated=False)
        except OperationFailed as why:
            # Quirk (clock behind credentials): some firmwares fault on an unauthenticated
            # GetSystemDateAndTime; a third-party device answers HTTP 401 with no
            # WWW-Authenticate header (nothing to answer at HTTP level). Neither refused
            # credentials: none were sent. Ask again with WS-Security on our own clock.
            log.info("camera at %s wants credentials to tell its time (%s)", self.where, why)
            self.clock_needs_credentials = True
            try:
                answer = await self.call("devicemgmt", "GetSystemDateAndTime")
            except (OperationFailed, OnvifAuthError) as fault:
                log.warning("camera at %s has no readable clock (%s); no skew correction", self.where, fault)
                return
        ours = (before + time.time()) / 2
        theirs = camera_utc(answer)
        if theirs is None:
            log.warning("camera at %s reported an unreadable clock; no skew correction", self.where)
            return
        await self.close()  # the next request builds a client stamped with the offset
        self.clock_offset = theirs.timestamp() + 0.5 - ours  # camera truncates to whole s
        if abs(self.clock_offset) > SKEW_WARNING_SECONDS:
            log.warning(
                "camera at %s clock is %+.0f s off; correcting WS-Security timestamps (enable NTP on the camera)",
                self.where,
                self.clock_offset,
            )
