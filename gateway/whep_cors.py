"""CORS for the WHEP endpoints, for the origins the site lists (``[gateway] whep_cors_origins``).

An agency's own player or video wall, served from its own origin, may POST an offer,
PATCH candidates and DELETE its session. Only the listed origins get CORS headers, only
on ``/whep/`` paths, and never ``Access-Control-Allow-Credentials``: a cross-origin player
authenticates with a bearer token. To make "bearer only" hold even against a browser that
would attach cookies, the Cookie header of a cross-origin WHEP request is dropped before
the gateway sees it. Preflights are answered by the OPTIONS routes (gateway/api/whep.py),
which need no credentials; this middleware adds the CORS fields to them.

A plain ASGI middleware like gateway/security_headers.py, which stays outside it.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WHEP_PREFIX = "/whep/"
ALLOW_METHODS = "OPTIONS, GET, POST, PATCH, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, If-Match"
EXPOSE_HEADERS = "Location, ETag, Link, Retry-After, Allow, Accept-Post, Accept-Patch"
MAX_AGE = "600"


class WhepCors:
    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(WHEP_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", [])]
        origin = next((v.decode("latin-1") for k, v in headers if k == b"origin"), None)
        if origin is None or origin not in self.origins:
            await self.app(scope, receive, send)  # same-origin pages, or no CORS for this origin
            return
        scope = {**scope, "headers": [(k, v) for k, v in headers if k != b"cookie"]}
        preflight = scope["method"] == "OPTIONS" and any(k == b"access-control-request-method" for k, _ in headers)
        extra = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
        ]
        if preflight:
            extra += [
                (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_cors)
