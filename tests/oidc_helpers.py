"""A gateway whose village police sign in through tests/oidc_provider.py, and signing in
through it over HTTP (following the redirects like a browser)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from gateway.app import create_app
from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import load_config
from gateway.identity.credentials import CredentialBox
from gateway.runtime import Gateway

from .conftest import free_port, serve_app
from .oidc_provider import Provider, User
from .web_helpers import CSRF, WebGateway, stop

AGENCY = "village-pd"
OFFICER = User(sub="c0ffee-4471", name="Officer Jordan Blake", groups=["patrol"], badge="4471")
MFA_AMR = ["mfa", "hwk", "otp"]


def oidc_table(provider: Provider, sealed_secret: str, **extra: str) -> str:
    fields = {
        "issuer": json.dumps(provider.issuer),
        "client_id": json.dumps(provider.client_id),
        "client_secret": json.dumps(sealed_secret),
        "mfa_amr": json.dumps(MFA_AMR),
        "groups_claim": '"groups"',
        "roles": '{ "dispatch" = "dispatcher", "patrol" = "officer" }',
        "badge_claim": '"badge_number"',
        **extra,
    }
    return "oidc = { " + ", ".join(f"{k} = {v}" for k, v in fields.items()) + " }"


@asynccontextmanager
async def oidc_gateway(
    data_dir: Path, provider: Provider, *, edit=None, port: int | None = None
) -> AsyncIterator[WebGateway]:
    """The demo district with ``provider`` as the village police's sign-in, served on a
    port known beforehand (``public_url`` makes the redirect URI the provider allows;
    ``port`` when the provider must know it before it starts)."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    path = ensure_demo_site(data_dir)
    sealed = CredentialBox.for_dir(data_dir / "secrets").seal(provider.client_secret)
    text = path.read_text()
    text = text.replace('node = "demo"\n', f'node = "demo"\npublic_url = "{base_url}"\n', 1)
    text = text.replace('id = "village-pd"\n', f'id = "village-pd"\n{oidc_table(provider, sealed)}\n', 1)
    path.write_text(edit(text) if edit else text)
    provider.redirect_uris = [f"{base_url}/signin/oidc/callback"]
    gateway = Gateway(load_config(path))
    app = create_app(gateway)
    server, task, url = await serve_app(app, port)
    assert url == base_url
    try:
        yield WebGateway(gateway, app, base_url, data_dir, demo_logins(data_dir))
    finally:
        await stop(server, task)


async def start_flow(client: httpx.AsyncClient, next_path: str = "/view") -> str:
    """Press the agency's button; the provider's authorization URL the browser is sent to."""
    r = await client.get(f"/signin/oidc/{AGENCY}", params={"next": next_path})
    assert r.status_code == 303, r.text
    return r.headers["location"]


async def authorize(url: str) -> str:
    """The provider approves at once; the callback URL (with code and state) it sends back."""
    async with httpx.AsyncClient(timeout=15) as op:
        r = await op.get(url)
    assert r.status_code == 302, r.text
    return r.headers["location"]


def callback_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def oidc_sign_in(wg: WebGateway, next_path: str = "/view") -> tuple[httpx.AsyncClient, httpx.Response]:
    """A client that went through the whole flow (sending the pages' CSRF header); the callback's answer."""
    client = wg.client(headers=CSRF)
    callback = await authorize(await start_flow(client, next_path))
    answer = await client.get(callback_path(callback))
    return client, answer


async def settle() -> None:
    await asyncio.sleep(0)
