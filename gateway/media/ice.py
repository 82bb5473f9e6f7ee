"""STUN/TURN servers for viewers on cellular and locked-down networks.

An officer's phone behind carrier-grade NAT, or a laptop on a network that allows only
outbound TCP 443, may not reach the gateway's UDP ports directly; a TURN server relays
for it. The site file lists the servers (``[[gateway.ice_servers]]``); TURN servers must
use the TURN REST scheme (coturn ``use-auth-secret``): the gateway hands each viewer a
short-lived username/password pair derived from a shared secret, so no long-lived TURN
password ever reaches a browser, and a credential leaked from a patrol car stops working
on its own.

    [[gateway.ice_servers]]
    urls = ["turn:turn.district.example:3478?transport=udp", "turns:turn.district.example:443?transport=tcp"]
    auth_secret = "enc:v1:..."        # coturn static-auth-secret, sealed: sightline seal --config FILE

    [[gateway.ice_servers]]
    urls = ["stun:stun.district.example:3478"]

The gateway's own peer uses only the STUN servers: it answers WHEP offers without trickle,
so TURN allocation on its side would delay every first frame, and the viewer's relay
already reaches the gateway's own address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer

from gateway.identity.credentials import PREFIX as SEALED_PREFIX
from gateway.identity.credentials import CredentialBox

SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
DEFAULT_TTL = 3600
MAX_TTL = 24 * 3600


class IceConfigError(ValueError):
    """An ``ice_servers`` entry is unusable; the message names it and what to write."""


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    sealed_secret: str | None = field(default=None, repr=False)

    @property
    def is_turn(self) -> bool:
        return any(u.startswith(("turn:", "turns:")) for u in self.urls)


def parse_ice_servers(raw: Any, where: str) -> tuple[IceServer, ...]:
    """The ``[gateway] ice_servers`` list of the site file, checked."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise IceConfigError(f"{where}: ice_servers must be a list of tables ([[gateway.ice_servers]])")
    servers = []
    for i, entry in enumerate(raw):
        at = f"{where}: ice_servers[{i}]"
        if not isinstance(entry, dict):
            raise IceConfigError(f"{at} must be a table with urls (and auth_secret for TURN)")
        unknown = set(entry) - {"urls", "auth_secret"}
        if unknown:
            raise IceConfigError(
                f"{at}: unknown keys {sorted(unknown)}; only urls and auth_secret are read "
                "(static TURN usernames and passwords are not supported: use auth_secret)"
            )
        urls = entry.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise IceConfigError(f"{at}.urls must be a non-empty list of stun:/turn: URLs")
        for url in urls:
            if not url.startswith(SCHEMES) or len(url.split(":", 1)[1]) < 1:
                raise IceConfigError(f"{at}.urls: {url!r} is not a stun:, stuns:, turn: or turns: URL")
        secret = entry.get("auth_secret")
        server = IceServer(tuple(urls), secret)
        if secret is not None and (not isinstance(secret, str) or not secret.startswith(SEALED_PREFIX)):
            raise IceConfigError(
                f"{at}.auth_secret is stored in plain text; store the sealed form "
                "(sightline seal --config FILE), like camera passwords"
            )
        if server.is_turn and secret is None:
            raise IceConfigError(
                f"{at}: TURN needs auth_secret (the TURN server's shared secret, coturn "
                "use-auth-secret); viewers get short-lived credentials made from it"
            )
        if not server.is_turn and secret is not None:
            raise IceConfigError(f"{at}: auth_secret is only for turn:/turns: URLs")
        servers.append(server)
    return tuple(servers)


def turn_credentials(secret: str, user: str, expires: int) -> tuple[str, str]:
    """The TURN REST API pair (draft-uberti-behave-turn-rest): ``expiry:user`` and
    base64(HMAC-SHA1(secret, username)), which coturn checks against the same secret."""
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def viewer_ice_servers(
    servers: tuple[IceServer, ...], box: CredentialBox, user: str, expires: int
) -> list[dict[str, Any]]:
    """What a viewer passes to ``new RTCPeerConnection({iceServers})``, credentials valid
    until ``expires`` (Unix seconds)."""
    out: list[dict[str, Any]] = []
    for server in servers:
        item: dict[str, Any] = {"urls": list(server.urls)}
        if server.sealed_secret is not None:
            item["username"], item["credential"] = turn_credentials(box.open(server.sealed_secret), user, expires)
        out.append(item)
    return out


def gateway_ice_servers(servers: tuple[IceServer, ...]) -> list[RTCIceServer]:
    """The STUN servers the gateway's own peer gathers with (see the module docstring)."""
    return [
        RTCIceServer(urls=[u for u in s.urls if u.startswith("stun:")])
        for s in servers
        if not s.is_turn and any(u.startswith("stun:") for u in s.urls)
    ]
