"""[[webhooks]] in the site file, sealing their secrets, and the gateway running the notifier."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.identity.signing import SIGNATURE_HEADER, verify
from gateway.notifier import seal_secret
from gateway.runtime import Gateway

SECRET = "cad-shared-secret-0123456789"


def webhook_toml(url: str, secret: str, topics: str = '["*"]', extra: str = "", ident: str = "cad") -> str:
    return f'\n[[webhooks]]\nid = "{ident}"\nurl = "{url}"\ntopics = {topics}\nsecret = "{secret}"\n{extra}'


@pytest.fixture
def site(site_file, tmp_path: Path):
    """Returns (path, write): write(webhook text) appends [[webhooks]] to the demo site."""
    path = site_file()
    base = path.read_text()

    def write(*blocks: str, top: str = "") -> Path:
        path.write_text(top + base + "".join(blocks))
        return path

    return path, write


def test_webhooks_are_parsed_and_kept_out_of_the_site_model(site):
    path, write = site
    sealed = seal_secret(path, SECRET)
    assert sealed.startswith("enc:v1:") and SECRET not in sealed
    config = load_config(
        write(
            webhook_toml("https://cad.example.org/hook", sealed, '["emergency.activated", "emergency.all_clear"]'),
            webhook_toml("http://127.0.0.1:9/hook", seal_secret(path, "x"), ident="comms"),
        )
    )
    cad, comms = config.webhooks
    assert cad.id == "cad" and cad.url == "https://cad.example.org/hook"
    assert cad.wants("emergency.activated") and not cad.wants("emergency.extended")
    assert comms.wants("emergency.extended")
    assert SECRET not in repr(config)
    assert seal_secret(config, SECRET) != sealed  # fresh token each time, same key
    assert load_config(site[0]).webhooks == (cad, comms)


def test_a_site_without_webhooks_has_none(site):
    path, _ = site
    assert load_config(path).webhooks == ()


def test_a_plain_text_secret_is_refused_with_how_to_seal_it(site):
    path, write = site
    with pytest.raises(ConfigError) as err:
        load_config(write(webhook_toml("https://cad.example.org/hook", SECRET)))
    assert "webhooks[0].secret is stored in plain text" in str(err.value)
    assert "seal_secret" in str(err.value)
    assert SECRET not in str(err.value)
    # the path form of seal_secret works on exactly that file, which load_config refuses
    assert seal_secret(path, SECRET).startswith("enc:v1:")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (webhook_toml("https://cad.example.org/h", "enc:v1:x", '["emergency.activate"]'), "unknown topics"),
        (webhook_toml("https://cad.example.org/h", "enc:v1:x", "[]"), "topics must be"),
        (webhook_toml("http://cad.example.org/h", "enc:v1:x"), "must use https"),
        (webhook_toml("ftp://cad.example.org/h", "enc:v1:x"), "https://"),
        (webhook_toml("https://user:pw@cad.example.org/h", "enc:v1:x"), "must not hold credentials"),
        (webhook_toml("https://cad.example.org/h", "enc:v1:x", extra="retries = 3\n"), "unknown keys"),
        (webhook_toml("https://cad.example.org/h", "enc:v1:x") * 2, "used by another webhook"),
        ('\n[[webhooks]]\nid = "cad"\nurl = "https://cad.example.org/h"\n', "secret must be"),
        ("top:webhooks = 3\n", "must be a list"),
    ],
)
def test_bad_webhooks_are_refused(site, block, message):
    _, write = site
    top = block.startswith("top:")
    with pytest.raises(ConfigError, match="webhooks") as err:
        load_config(write(top=block[4:]) if top else write(block))
    assert message in str(err.value)


async def test_the_gateway_delivers_its_outbox_and_stops_cleanly(site):
    received: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path, write = site
    url = f"http://127.0.0.1:{server.server_address[1]}/cad"
    gateway = Gateway(load_config(write(webhook_toml(url, seal_secret(path, SECRET), '["emergency.activated"]'))))
    try:
        await gateway.start()
        gateway.outbox.enqueue("emergency.extended", {"emergency": {"id": "x"}})  # not wanted by cad
        [n] = gateway.outbox.enqueue("emergency.activated", {"emergency": {"id": "x", "drill": True}})
        deadline = time.monotonic() + 5
        while gateway.outbox.pending_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        [(headers, body)] = received
        assert verify(SECRET, body, headers[SIGNATURE_HEADER], now=time.time())
        assert json.loads(body)["id"] == n.id
        assert b'sightline_notifications{state="pending"} 0.0' in gateway.metrics.render()
        assert [e.object for e in gateway.audit.entries() if e.event_type == "notification.delivered"] == [
            f"notification:{n.id}"
        ]
    finally:
        await gateway.stop()
        server.shutdown()
        server.server_close()
