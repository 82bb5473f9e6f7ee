"""HTTPS when the site file names a certificate: what a bad certificate or key says, and a
real ``sightline demo`` process serving only TLS, with HSTS and the security headers on
every kind of response and a Secure session cookie."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.cli.demo import demo_logins, ensure_demo_site
from gateway.config import ConfigError, load_config
from gateway.identity import totp
from gateway.identity.signin import CSRF_HEADER, CSRF_VALUE, SESSION_COOKIE
from gateway.security_headers import CONTENT_SECURITY_POLICY
from tests.conftest import free_port
from tests.tls_certs import make_certs, tls_site_text

HSTS = "max-age=31536000"


def _site(tmp_path: Path, extra: str) -> Path:
    path = ensure_demo_site(tmp_path / "site")
    path.write_text(path.read_text().replace("[gateway]\n", "[gateway]\n" + extra, 1))
    return path


def test_a_good_pair_turns_https_on_and_public_url_defaults_to_https(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    path = ensure_demo_site(tmp_path / "site")
    path.write_text(tls_site_text(path.read_text(), certs))
    config = load_config(path)
    assert config.tls is not None and (config.tls.cert, config.tls.key) == (certs.cert, certs.key)
    assert config.public_url == "https://127.0.0.1:8000"
    plain = load_config(_site(tmp_path / "plain", ""))
    assert plain.tls is None and plain.public_url == "http://127.0.0.1:8000"


def test_paths_are_relative_to_the_site_file(tmp_path: Path) -> None:
    make_certs(tmp_path / "site" / "tls")
    config = load_config(_site(tmp_path, 'tls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'))
    assert config.tls is not None and config.tls.cert == tmp_path / "site" / "tls" / "cert.pem"


@pytest.mark.parametrize(
    "lines, words",
    [
        ('tls_cert = "{cert}"\n', "tls_cert is set but tls_key is not: give both"),
        ('tls_key = "{key}"\n', "tls_key is set but tls_cert is not: give both"),
        ('tls_cert = "missing.pem"\ntls_key = "{key}"\n', "tls_cert: no such file"),
        ('tls_cert = "{cert}"\ntls_key = "nope/key.pem"\n', "tls_key: no such file"),
        ('tls_cert = "{cert}"\ntls_key = "{other}"\n', "is not the private key of the certificate tls_cert"),
        ('tls_cert = "{encrypted}"\ntls_key = "{encrypted}"\n', "not a PEM certificate chain"),
        ('tls_cert = "{cert}"\ntls_key = "{encrypted}"\n', "is encrypted with a pass phrase"),
        ('tls_cert = "{garbage}"\ntls_key = "{key}"\n', "not a PEM certificate chain"),
        ("tls_cert = 5\ntls_key = 6\n", "tls_cert must be the path of a PEM file"),
    ],
)
def test_a_bad_certificate_or_key_names_the_key_and_the_fix(tmp_path: Path, lines: str, words: str) -> None:
    certs = make_certs(tmp_path / "certs")
    garbage = tmp_path / "certs" / "garbage.pem"
    garbage.write_text("not a certificate\n")
    text = lines.format(
        cert=certs.cert, key=certs.key, other=certs.other_key, encrypted=certs.encrypted_key, garbage=garbage
    )
    with pytest.raises(ConfigError) as caught:
        load_config(_site(tmp_path, text))
    assert "[gateway]" in str(caught.value) and words in str(caught.value), str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key_says_to_fix_its_permissions(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    certs.key.chmod(0)
    with pytest.raises(ConfigError, match="tls_key: .* cannot be read"):
        load_config(_site(tmp_path, f'tls_cert = "{certs.cert}"\ntls_key = "{certs.key}"\n'))


def _start_demo(args: list[str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _wait_https(proc: subprocess.Popen[str], base: str, ca: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if ca.exists() and httpx.get(f"{base}/healthz", verify=trusting(ca), timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    raise AssertionError("the demo did not answer over HTTPS within 20 s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def _security_headers(r: httpx.Response, what: str) -> None:
    assert r.headers.get("strict-transport-security") == HSTS, (what, dict(r.headers))
    assert r.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, what
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert r.headers.get("x-content-type-options") == "nosniff", what
    assert r.headers.get("referrer-policy") == "no-referrer", what


def test_demo_with_tls_cert_serves_only_https_with_hsts_headers_and_a_secure_cookie(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    data = tmp_path / "demo"
    site = ensure_demo_site(data)
    site.write_text(tls_site_text(site.read_text(), certs))
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    proc = _start_demo(["--data-dir", str(data)], port)
    try:
        _wait_https(proc, base, certs.ca)
        with httpx.Client(base_url=base, verify=trusting(certs.ca), timeout=10) as client:
            answers = {
                "page": client.get("/signin"),
                "api": client.get("/healthz"),
                "static": client.get("/static/app.css"),
                "api refusal": client.get("/api/v1/cameras"),
                "not found": client.get("/api/v1/no-such-thing"),
                "redirect": client.get("/"),
                "whep refusal": client.post(
                    "/whep/hs-front", content=b"v=0", headers={"content-type": "application/sdp"}
                ),
            }
            assert [r.status_code for r in answers.values()] == [200, 200, 200, 401, 404, 303, 401]
            for what, r in answers.items():
                _security_headers(r, what)

            # sign in through the API the sign-in page uses: the cookie is Secure, HttpOnly, SameSite
            logins = demo_logins(data)["officer"]
            body = {"username": "officer", "password": logins["password"], "totp": totp.code_at(logins["totp_secret"])}
            r = client.post("/api/v1/auth/login", json=body, headers={CSRF_HEADER: CSRF_VALUE})
            assert r.status_code == 200, r.text
            _security_headers(r, "sign-in")
            cookie = r.headers["set-cookie"]
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
            assert cookie.startswith(f"{SESSION_COOKIE}=")
            assert {"secure", "httponly", "samesite"} <= attributes, cookie
            assert "samesite=strict" in cookie.lower()
            view = client.get("/view")
            assert view.status_code == 200 and "Live cameras" in view.text
            _security_headers(view, "viewer page")

        # the same port refuses plain HTTP: no answer in clear, not even a redirect
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
        # and a client that does not trust the certificate gets nothing either
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=3)
    finally:
        out = _stop(proc)
    assert f"gateway   : {base}" in out, out


def test_demo_tls_option_makes_a_throwaway_certificate_and_prints_the_https_url(tmp_path: Path) -> None:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    proc = _start_demo(["--data-dir", str(tmp_path), "--tls"], port)
    try:
        _wait_https(proc, base, tmp_path / "tls" / "demo-ca.pem")
        r = httpx.get(f"{base}/signin", verify=trusting(tmp_path / "tls" / "demo-ca.pem"))
        _security_headers(r, "page")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
    finally:
        out = _stop(proc)
    assert f"gateway   : {base}" in out and "demo-ca.pem" in out, out
    assert (tmp_path / "tls" / "demo-key.pem").stat().st_mode & 0o077 == 0
    assert "tls_cert" not in (tmp_path / "site.toml").read_text()  # the site file is left as it was


def test_serve_speaks_https_when_the_site_file_names_a_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    site = ensure_demo_site(tmp_path / "site")
    site.write_text(tls_site_text(site.read_text(), certs))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(site), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_https(proc, f"https://127.0.0.1:{port}", certs.ca)
        r = httpx.get(f"https://127.0.0.1:{port}/static/app.css", verify=trusting(certs.ca))
        _security_headers(r, "static over serve")
    finally:
        out = _stop(proc)
    assert f"https://127.0.0.1:{port}" in out, out  # uvicorn says where it listens


def test_serve_with_a_mismatched_key_stops_at_start_and_says_why(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    site = ensure_demo_site(tmp_path / "site")
    site.write_text(tls_site_text(site.read_text(), certs, key=certs.other_key))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(site), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "tls_key" in done.stderr and "is not the private key of the certificate" in done.stderr, done.stderr
