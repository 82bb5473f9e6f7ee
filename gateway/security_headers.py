"""The one place the security headers are set: on every response the gateway sends.

Pages, API JSON, static files, WHEP answers, errors (500s included) and redirects all
carry the same Content-Security-Policy (no inline script, no framing), ``nosniff`` and
``Referrer-Policy``; a response that sets one of them itself keeps its own (a floor plan
SVG is sandboxed harder). HSTS goes only with responses the browser receives over TLS:
this node serves HTTPS itself (``[gateway] tls_cert``), or its ``public_url`` is https
behind a TLS-terminating proxy (browsers ignore HSTS sent over plain HTTP anyway).

FastAPI's own API pages (/docs, /redoc) load Swagger UI and ReDoc from their CDN and start
them with one inline script: they get a policy of their own that allows that CDN and
exactly that script (by its hash), still no other inline script and no framing.

A plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``, so streamed responses
(camera relays) pass through untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Collection, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.tls import HSTS_VALUE

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
HSTS_HEADER = "Strict-Transport-Security"

CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' " + CDN + " {hashes}; style-src 'self' " + CDN + " "
    "https://fonts.googleapis.com 'unsafe-inline'; font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https_public_url: bool = False, docs_paths: Collection[str] = ()) -> None:
        self.app = app
        self.https_public_url = https_public_url
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(SECURITY_HEADERS)
        if scope.get("scheme") == "https" or self.https_public_url:
            extra[HSTS_HEADER] = HSTS_VALUE
        if scope.get("path") in self.docs_paths:
            await self._docs_page(scope, receive, send, extra)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merged(message.get("headers", []), extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs_page(self, scope: Scope, receive: Receive, send: Send, extra: dict[str, str]) -> None:
        """Holds the (small, generated) page back until its inline scripts are hashed."""
        start: Message | None = None
        body = bytearray()

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body") or start is None:
                return
            hashes = " ".join(
                "'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
                for m in _INLINE_SCRIPT.findall(bytes(body))
            )
            start["headers"] = _merged(
                start.get("headers", []), {**extra, "Content-Security-Policy": DOCS_POLICY.format(hashes=hashes)}
            )
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, collect)


def _merged(headers: Iterable[tuple[bytes, bytes]], extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    out = list(headers)
    present = {name.lower() for name, _ in out}
    out += [(k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present]
    return out
