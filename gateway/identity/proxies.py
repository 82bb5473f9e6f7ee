"""Where a request comes from: the TCP peer, unless that peer is a proxy the site file trusts.

``X-Forwarded-For`` is only words in a header: anyone can send one. It is believed only
when the peer that sent it is listed in ``[gateway] trusted_proxies`` (addresses or
networks, e.g. ``["127.0.0.1", "10.0.0.0/8"]``; none by default). The header is then read
from the right: each hop a trusted proxy added is skipped, and the first address that is
not a trusted proxy is the client (entries to its left were written by the client and
prove nothing). The audit, the sign-in limits and the failure summaries all take the
address from :func:`client_address`, so none of them can be told a made-up source.

uvicorn's own ``proxy_headers`` is switched off (gateway/server.py): it would rewrite the
peer before the application sees it, trusting 127.0.0.1 by default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from fastapi import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "x-forwarded-for"


def parse_networks(values: object, where: str) -> tuple[Network, ...]:
    """``trusted_proxies`` from the site file: a list of addresses or CIDR networks."""
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f'{where} must be a list of addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"]')
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def resolve(peer: str | None, forwarded: Iterable[str], networks: Sequence[Network]) -> str | None:
    """The client's address: ``peer`` itself unless it is a trusted proxy; then the nearest
    hop of ``X-Forwarded-For`` (header values in order) that is not a trusted proxy. An
    entry that is not an address ends the walk at the last hop known to be genuine."""
    if peer is None or not networks:
        return peer
    current = _address(peer)
    if current is None or not _trusted(current, networks):
        return peer
    hops = [hop for value in forwarded for hop in value.split(",") if hop.strip()]
    found = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        found = str(address)
        if not _trusted(address, networks):
            break
    return found


def client_address(request: Request) -> str | None:
    """The one place a request's source address comes from (also a FastAPI dependency, so
    ``Request`` is imported at run time)."""
    peer = request.client.host if request.client else None
    networks = request.app.state.gateway.config.trusted_proxies
    if not networks:
        return peer
    return resolve(peer, request.headers.getlist(FORWARDED_FOR), networks)
