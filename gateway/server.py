"""The HTTP server a node runs: uvicorn, told to end this node's relay streams first on shutdown.

uvicorn's graceful shutdown waits for every open response to finish; a camera relay to
another node (gateway/api/relay.py) never finishes by itself, so without this hook a node
relaying a camera would not stop.

uvicorn's ``proxy_headers`` is switched off: it believes X-Forwarded-For from 127.0.0.1 by
default, whereas the gateway believes it only from the proxies the site file lists
(gateway/identity/proxies.py).

With ``[gateway] tls_cert`` and ``tls_key`` (gateway/tls.py) the port speaks only TLS: a
plain HTTP request there fails its handshake instead of being answered in clear.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from gateway.runtime import Gateway

# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 chooses its own); uvicorn's
# default "TLSv1" would also offer CBC suites.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        config.proxy_headers = False  # X-Forwarded-For is judged by gateway/identity/proxies.py
        tls = gateway.config.tls
        if tls is not None:
            config.ssl_certfile, config.ssl_keyfile = str(tls.cert), str(tls.key)
            config.ssl_ciphers = TLS12_CIPHERS
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.gateway.begin_shutdown()
        await super().shutdown(sockets)
