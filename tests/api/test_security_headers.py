"""The security headers on every response (gateway/security_headers.py), HSTS only where
the browser is on TLS, and pages that need no inline script or style."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from gateway.api.pages import WEB_DIR
from gateway.app import create_app
from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import load_config
from gateway.identity import totp
from gateway.runtime import Gateway
from gateway.security_headers import CONTENT_SECURITY_POLICY
from tests.web_helpers import CSRF, start_web_gateway, stop

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class _Inline(HTMLParser):
    """Every inline script, inline event handler, inline style and javascript: URL."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value or "" for name, value in attrs}
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append(f"<script> without src: {attrs}")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in names.items():
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...> event handler")
            if name == "style":
                self.found.append(f"<{tag} style=...>")
            if value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")


@pytest.mark.parametrize("template", sorted(p.name for p in (WEB_DIR / "templates").glob("*.html")))
def test_templates_have_no_inline_script_handler_or_style(template: str) -> None:
    """The CSP forbids them (script-src and style-src 'self'): a page using one would break."""
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    parser = _Inline()
    parser.feed((WEB_DIR / "templates" / template).read_text())
    assert parser.found == [], f"{template}: {parser.found}"


def test_scripts_write_no_inline_handlers_or_style_attributes() -> None:
    """The page scripts build markup without inline handlers or style attributes either."""
    for path in sorted((WEB_DIR / "static").glob("*.js")):
        text = path.read_text()
        assert not re.search(r"""setAttribute\(\s*["'](on\w+|style)["']""", text), path.name
        assert not re.search(r"""<[a-z][^>]*\s(on\w+|style)\s*=""", text), path.name
        assert "eval(" not in text and "new Function" not in text, path.name


async def test_plain_http_sends_every_header_but_hsts_and_cookies_are_not_secure(tmp_path: Path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        async with wg.client() as client:
            for path in ("/signin", "/healthz", "/static/viewer.js", "/api/v1/cameras", "/nope", "/"):
                r = await client.get(path)
                assert {k: r.headers.get(k) for k in HEADERS} == HEADERS, path
                assert "strict-transport-security" not in r.headers, path
        body = {"username": "officer", "password": wg.logins["officer"]["password"], "totp": wg.code("officer")}
        async with wg.client() as client:
            r = await client.post("/api/v1/auth/login", json=body, headers=CSRF)
            assert r.status_code == 200, r.text
            cookie = r.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    finally:
        await stop(server, task)


def _app(tmp_path: Path, public_url: str | None = None):
    path = ensure_demo_site(tmp_path)
    if public_url:
        path.write_text(path.read_text().replace("[gateway]\n", f'[gateway]\npublic_url = "{public_url}"\n', 1))
    return create_app(Gateway(load_config(path)))


async def test_an_unexpected_error_still_carries_the_headers(tmp_path: Path) -> None:
    """500s are answered by Starlette's outermost middleware; the headers wrap even that."""
    app = _app(tmp_path)

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom-for-test", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        r = await client.get("/boom-for-test")
    assert r.status_code == 500 and r.json()["error"] == "internal"
    assert {k: r.headers.get(k) for k in HEADERS} == HEADERS


async def test_behind_a_tls_proxy_an_https_public_url_sends_hsts_and_secure_cookies(tmp_path: Path) -> None:
    app = _app(tmp_path, "https://cameras.district.example")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        r = await client.get("/healthz")
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        logins = demo_logins(tmp_path)["officer"]
        body = {"username": "officer", "password": logins["password"], "totp": totp.code_at(logins["totp_secret"])}
        r = await client.post("/api/v1/auth/login", json=body, headers=CSRF)
        assert r.status_code == 200, r.text
        assert "; secure" in r.headers["set-cookie"].lower()


async def test_api_docs_get_a_policy_of_their_own_allowing_only_their_script(tmp_path: Path) -> None:
    app = _app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for path in ("/docs", "/redoc"):
            r = await client.get(path)
            policy = r.headers["content-security-policy"]
            assert r.status_code == 200 and "frame-ancestors 'none'" in policy, path
            script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
            assert "'unsafe-inline'" not in script_src, path
            for inline in re.findall(r"<script>(.*?)</script>", r.text, re.S):
                digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
                assert f"'sha256-{digest}'" in script_src, path
