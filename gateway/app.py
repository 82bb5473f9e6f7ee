"""The FastAPI application: routes, error shape and the gateway's lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from gateway import errors
from gateway.api import (
    audit,
    bearer,
    buildings,
    cameras,
    emergencies,
    guest_passes,
    health,
    ice,
    records,
    relay,
    revocation,
    sessions,
    triggers,
    whep,
)
from gateway.api import oidc as oidc_routes
from gateway.api import pages as web
from gateway.api import signin as signin_routes
from gateway.identity import guards, oauth, signin
from gateway.identity.failures import FailureSummary
from gateway.runtime import Gateway
from gateway.security_headers import SecurityHeaders

log = logging.getLogger(__name__)
SESSION_SWEEP_SECONDS = 60.0
FAILURE_FLUSH_SECONDS = 5.0
KEEP_AWAKE_SECONDS = 30.0  # a session whose video plays is touched this often (idle lock: 30 min)


class SightlineApp(FastAPI):
    """FastAPI with the security headers outside everything, so even the 500 answers of
    Starlette's outermost error middleware carry them (gateway/security_headers.py)."""

    https_public_url = False

    def build_middleware_stack(self) -> ASGIApp:
        docs = [p for p in (self.docs_url, self.redoc_url) if p]
        return SecurityHeaders(
            super().build_middleware_stack(), https_public_url=self.https_public_url, docs_paths=docs
        )


def create_app(gateway: Gateway) -> FastAPI:
    # Page sign-in sessions and failure limits: in memory, or shared through Redis when the
    # site file names one (then an unreachable Redis stops the start here, saying what to check).
    sign_in = signin.SignIn.for_config(gateway.config)

    # Repeated authentication failures: one audit entry per source and minute with a count.
    auth_failures = FailureSummary(gateway.audit)

    async def every(seconds: float, work: Callable[[], object], what: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await asyncio.to_thread(work)
            except Exception:
                log.exception("%s failed; retrying", what)

    async def keep_awake() -> None:
        """A session whose video plays is not idle (gateway/identity/signin.py)."""
        last = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            if now - last < min(KEEP_AWAKE_SECONDS, sign_in.sessions.idle_seconds / 4):
                continue
            last = now
            try:
                await asyncio.to_thread(signin.keep_watching_sessions_awake, sign_in, gateway.sessions.web_sessions())
            except Exception:
                log.exception("keeping watching sessions awake failed; retrying")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        loops = [
            asyncio.create_task(
                every(
                    SESSION_SWEEP_SECONDS,
                    lambda: signin.sweep_sessions(sign_in, gateway.audit, gateway.tokens),
                    "session sweep",
                ),
                name="sightline-session-sweep",
            ),
            asyncio.create_task(keep_awake(), name="sightline-keep-awake"),
            asyncio.create_task(
                every(FAILURE_FLUSH_SECONDS, auth_failures.flush, "authentication failure summary"),
                name="sightline-auth-failures",
            ),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            auth_failures.flush(everything=True)
            await gateway.stop()
            sign_in.close()

    app = SightlineApp(
        title="Sightline",
        summary="Time-boxed, audited police access to school cameras during emergencies.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.https_public_url = gateway.config.public_url.startswith("https://")
    app.state.gateway = gateway
    errors.install(app)
    app.state.signin = sign_in
    app.state.auth_failures = auth_failures
    install_routes(app)
    guards.declare_documentation(app)
    _document_error_shape(app)
    return app


def install_routes(app: FastAPI) -> None:
    """Every route and page, each with its guard (gateway/identity/guards.py)."""
    for module in (
        health,
        cameras,
        buildings,
        guest_passes,  # before emergencies: its POST /emergencies/{id}/{transition} would take .../guest-passes
        emergencies,
        triggers,
        audit,
        whep,
        ice,
        sessions,
        records,
        oauth,
        relay,
        signin_routes,
        bearer,
        revocation,
        oidc_routes,
    ):
        app.include_router(module.router)
    web.install(app)


def _document_error_shape(app: FastAPI) -> None:
    """FastAPI documents 422 as its own ``HTTPValidationError``; ours is ``{"error", "detail"}``
    (gateway/errors.py), so the OpenAPI document says so for every operation."""
    generate = app.openapi
    shape = {
        "title": "ErrorBody",
        "type": "object",
        "additionalProperties": False,
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string", "title": "Error"}, "detail": {"type": "string", "title": "Detail"}},
    }

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorBody", shape)
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                response = operation.get("responses", {}).get("422")
                if response and "HTTPValidationError" in str(response.get("content")):
                    response["description"] = "the request is not valid"
                    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        records.describe_site(doc, app.state.gateway.config.site)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
