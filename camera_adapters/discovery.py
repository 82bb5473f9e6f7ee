"""WS-Discovery: find ONVIF cameras on the LAN (Probe for dn:NetworkVideoTransmitter).

One UDP socket sends the Probe to every target (the multicast group by default; a
unicast address reaches cameras on other subnets, where multicast does not go) and
collects ProbeMatches until the timeout. Answers are matched to our MessageID and
de-duplicated by endpoint address, since cameras often answer twice.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

log = logging.getLogger(__name__)

MULTICAST = ("239.255.255.250", 3702)
SCOPE_PREFIX = "onvif://www.onvif.org/"
_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"
 xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header><w:MessageID>{message_id}</w:MessageID>
<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>
</e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>"""


@dataclass(frozen=True)
class DiscoveredDevice:
    """A camera that answered; ``address`` is its stable endpoint id (usually urn:uuid)."""

    address: str
    xaddrs: tuple[str, ...]
    name: str | None
    hardware: str | None
    scopes: tuple[str, ...]
    location: str | None = None


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _children(el: etree._Element | None, name: str) -> Iterator[etree._Element]:
    return (c for c in (el if el is not None else ()) if _local(c) == name)


def _child(el: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element along ``path`` of local names: answers are read by local name,
    since firmwares mix WS-Addressing and WS-Discovery versions and prefixes."""
    for name in path:
        el = next(_children(el, name), None)
    return el


def _text(el: etree._Element | None, *path: str) -> str | None:
    found = _child(el, *path)
    return found.text.strip() if found is not None and found.text is not None else None


def _parse(data: bytes) -> etree._Element:
    """Parse an untrusted datagram without entities or network access."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(data, parser)


def probe_message(message_id: str) -> bytes:
    return _PROBE.format(message_id=message_id).encode()


def _scope(scopes: tuple[str, ...], kind: str) -> str | None:
    """The value of ``onvif://www.onvif.org/<kind>/...`` (percent-decoded; vendors encode
    spaces), or None."""
    prefix = f"{SCOPE_PREFIX}{kind}/"
    for scope in scopes:
        if scope.lower().startswith(prefix.lower()):
            return unquote(scope[len(prefix) :]) or None
    return None


def parse_probe_matches(data: bytes, message_id: str) -> list[DiscoveredDevice]:
    """Devices in a ProbeMatches answer to ``message_id``; anything else gives []."""
    try:
        root = _parse(data)
    except etree.XMLSyntaxError:
        return []
    relates = _text(root, "Header", "RelatesTo")
    matches = _child(root, "Body", "ProbeMatches")
    if _local(root) != "Envelope" or matches is None or (relates and relates != message_id):
        return []
    devices = []
    for match in _children(matches, "ProbeMatch"):
        address = _text(match, "EndpointReference", "Address")
        if not address:
            continue
        scopes = tuple((_text(match, "Scopes") or "").split())
        devices.append(
            DiscoveredDevice(
                address=address,
                xaddrs=tuple((_text(match, "XAddrs") or "").split()),
                name=_scope(scopes, "name"),
                hardware=_scope(scopes, "hardware"),
                scopes=scopes,
                location=_scope(scopes, "location"),
            )
        )
    return devices


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for device in parse_probe_matches(data, self.message_id):
            self.found.setdefault(device.address, device)

    def error_received(self, exc: Exception) -> None:
        log.debug("WS-Discovery socket error: %s", exc)


async def discover(
    timeout: float = 3.0, *, targets: Sequence[tuple[str, int]] = (MULTICAST,)
) -> list[DiscoveredDevice]:
    """Probe ``targets`` and return every distinct device that answered within ``timeout``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.bind(("0.0.0.0", 0))
    message_id = f"uuid:{uuid.uuid4()}"
    transport, collector = await loop.create_datagram_endpoint(lambda: _Collector(message_id), sock=sock)
    try:
        message = probe_message(message_id)
        for target in targets:
            try:
                transport.sendto(message, target)
            except OSError as exc:
                log.warning("WS-Discovery probe to %s:%s failed: %s", *target, exc)
        await asyncio.sleep(timeout)
    finally:
        transport.close()
    return sorted(collector.found.values(), key=lambda d: (d.name or "", d.address))
