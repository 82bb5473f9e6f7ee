"""ONVIF Profile S client: who a camera is, which RTSP streams it has, its snapshot.

SOAP, the WSDLs and WS-Security come from onvif-zeep-async (the library Home Assistant's
ONVIF integration uses; see ``library``). This package adds what an installer needs:
the camera's clock read even from firmwares that get it wrong, a main and a sub stream
chosen, and every failure put into words. Each camera quirk is handled, and commented
as ``Quirk (name)``, where it occurs.

Exceptions::

    OnvifError               a probe or snapshot failed; the message says what to do
    ├── OnvifAuthError       the camera refused the credentials that were sent
    └── OnvifUnreachable     nothing answered in time at the given address
"""

from .choice import choose_streams
from .model import DeviceInfo, MediaProfile, OnvifAuthError, OnvifCamera, OnvifError, OnvifUnreachable
from .probe import probe_camera
from .snapshot import fetch_snapshot

__all__ = [
    "DeviceInfo",
    "MediaProfile",
    "OnvifAuthError",
    "OnvifCamera",
    "OnvifError",
    "OnvifUnreachable",
    "choose_streams",
    "fetch_snapshot",
    "probe_camera",
]
