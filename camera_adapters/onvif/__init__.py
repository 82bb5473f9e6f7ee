"""ONVIF Profile S client: who a camera is, which RTSP streams it has, its snapshot.

Own SOAP over httpx + lxml rather than a WSDL-driven client: a probe needs seven
operations, and owning the wire lets us stamp WS-Security on the camera's clock,
classify every failure for an installer and keep passwords out of logs.
"""

from .choice import choose_streams
from .model import (DeviceInfo, MediaProfile, OnvifAuthError, OnvifCamera, OnvifError,
                    OnvifUnreachable)
from .probe import probe_camera
from .snapshot import fetch_snapshot

__all__ = [
    "DeviceInfo", "MediaProfile", "OnvifAuthError", "OnvifCamera", "OnvifError",
    "OnvifUnreachable", "choose_streams", "fetch_snapshot", "probe_camera",
]
