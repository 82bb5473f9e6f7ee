"""Request bodies and response readers for the few ONVIF operations a probe needs.

Requests are built to the ONVIF device and media WSDLs (the test simulator validates
them against those schemas); responses are read leniently by local name.
"""

from __future__ import annotations

from lxml import etree

from .model import DeviceInfo, MediaProfile
from .namespaces import DEVICE, MEDIA, SCHEMA
from .xmlread import Element, child, children, number, text


def request(namespace: str, operation: str, **fields: str) -> Element:
    """``<operation>`` with simple child elements in the operation's namespace."""
    el = etree.Element(f"{{{namespace}}}{operation}", nsmap={None: namespace, "tt": SCHEMA})
    for name, value in fields.items():
        etree.SubElement(el, f"{{{namespace}}}{name}").text = value
    return el


def get_system_date_and_time() -> Element:
    return request(DEVICE, "GetSystemDateAndTime")


def get_device_information() -> Element:
    return request(DEVICE, "GetDeviceInformation")


def get_services() -> Element:
    return request(DEVICE, "GetServices", IncludeCapability="false")


def get_capabilities() -> Element:
    return request(DEVICE, "GetCapabilities", Category="Media")


def get_profiles() -> Element:
    return request(MEDIA, "GetProfiles")


def get_stream_uri(profile_token: str) -> Element:
    el = request(MEDIA, "GetStreamUri")
    setup = etree.SubElement(el, f"{{{MEDIA}}}StreamSetup")
    etree.SubElement(setup, f"{{{SCHEMA}}}Stream").text = "RTP-Unicast"
    transport = etree.SubElement(setup, f"{{{SCHEMA}}}Transport")
    etree.SubElement(transport, f"{{{SCHEMA}}}Protocol").text = "RTSP"
    etree.SubElement(el, f"{{{MEDIA}}}ProfileToken").text = profile_token
    return el


def get_snapshot_uri(profile_token: str) -> Element:
    return request(MEDIA, "GetSnapshotUri", ProfileToken=profile_token)


def read_device_information(response: Element) -> DeviceInfo:
    return DeviceInfo(
        manufacturer=text(response, "Manufacturer") or "",
        model=text(response, "Model") or "",
        firmware=text(response, "FirmwareVersion") or "",
        serial=text(response, "SerialNumber") or "",
    )


def read_media_xaddr_from_services(response: Element) -> str | None:
    for service in children(response, "Service"):
        if text(service, "Namespace") == MEDIA:
            return text(service, "XAddr")
    return None


def read_media_xaddr_from_capabilities(response: Element) -> str | None:
    return text(response, "Capabilities", "Media", "XAddr")


def read_profiles(response: Element) -> tuple[MediaProfile, ...]:
    profiles = []
    for el in children(response, "Profiles"):
        token = el.get("token")
        if not token:
            continue
        encoder = child(el, "VideoEncoderConfiguration")
        width = number(encoder, "Resolution", "Width")
        height = number(encoder, "Resolution", "Height")
        profiles.append(MediaProfile(
            token=token,
            name=text(el, "Name") or token,
            encoding=text(encoder, "Encoding"),
            width=int(width) if width else None,
            height=int(height) if height else None,
            fps=number(encoder, "RateControl", "FrameRateLimit"),
        ))
    return tuple(profiles)


def read_media_uri(response: Element) -> str | None:
    return text(response, "MediaUri", "Uri")
