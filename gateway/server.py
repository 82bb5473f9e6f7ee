"""The HTTP server a node runs: uvicorn, told to end this node's relay streams first on shutdown.

uvicorn's graceful shutdown waits for every open response to finish; a camera relay to
another node (gateway/api/relay.py) never finishes by itself, so without this hook a node
relaying a camera would not stop.

uvicorn's ``proxy_headers`` is switched off: it believes X-Forwarded-For from 127.0.0.1 by
default, whereas the gateway believes it only from the proxies the site file lists
(gateway/identity/proxies.py).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from gateway.runtime import Gateway


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        config.proxy_headers = False  # X-Forwarded-For is judged by gateway/identity/proxies.py
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.gateway.begin_shutdown()
        await super().shutdown(sockets)
