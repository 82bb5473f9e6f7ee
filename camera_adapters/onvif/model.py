"""What an ONVIF probe tells the gateway, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str


@dataclass(frozen=True)
class MediaProfile:
    """One media profile; encoder fields are None when the profile has no video encoder."""

    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class OnvifCamera:
    """A probed camera; URIs are as the camera reports them but never carry credentials."""

    info: DeviceInfo
    profiles: tuple[MediaProfile, ...]
    main_uri: str
    sub_uri: str | None
    snapshot_uri: str | None
    clock_offset: float
    main_profile: str = ""
    sub_profile: str | None = None


class OnvifError(Exception):
    """A probe or snapshot failed; the message says what failed and what to do about it."""


class OnvifAuthError(OnvifError):
    """The camera refused the credentials (kept apart so a UI can ask for them again)."""


class OnvifUnreachable(OnvifError):
    """Nothing answered in time at the given address."""
