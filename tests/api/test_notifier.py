"""Webhook delivery (gateway/notifier.py) to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from emergency.audit import AuditLog
from emergency.clock import SystemClock
from emergency.outbox import Outbox
from emergency.sqlite_store import SqliteStore
from gateway.config import WebhookConfig
from gateway.identity.credentials import CredentialBox
from gateway.identity.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from gateway.metrics import Metrics
from gateway.notifier import Notifier, webhook_subscribers
from tests.conftest import free_port

SECRET = "wh-secret-Zq81xPlainTextMustNeverLeak"
PAYLOAD = {
    "emergency": {"id": "em1", "building": "hs", "action": "LOCKDOWN", "state": "active", "drill": True},
    "at": "2025-01-06T08:00:00+00:00",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver: answers with the queued statuses, then ``default``."""

    port: int
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sightline?token=query-part"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers), body, time.monotonic()))
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    r.start()
    yield r
    r.stop()


@dataclass
class Node:
    """One gateway's worth of outbox plumbing on a data dir (reopenable: a restart)."""

    data_dir: Path
    url: str
    backoff_base: float = 0.05
    max_attempts: int = 20

    def __post_init__(self) -> None:
        self.box = CredentialBox.for_dir(self.data_dir / "secrets")
        self.webhook = WebhookConfig(
            id="cad", url=self.url, topics=frozenset({"*"}), sealed_secret=self.box.seal(SECRET)
        )
        self.open()

    def open(self) -> None:
        clock = SystemClock()
        self.store = SqliteStore(self.data_dir / "sightline.db")
        self.audit = AuditLog(self.store, clock, "test")
        self.metrics = Metrics()
        self.outbox = Outbox(
            self.store,
            clock,
            webhook_subscribers([self.webhook]),
            backoff_base=self.backoff_base,
            backoff_cap=0.2,
            jitter=0.0,
            max_attempts=self.max_attempts,
        )
        self.notifier = Notifier(
            self.outbox,
            [self.webhook],
            self.box,
            clock=clock,
            audit=self.audit,
            metrics=self.metrics,
            poll_interval=0.02,
            timeout=2.0,
        )

    async def restart(self) -> None:
        await self.notifier.stop()
        self.store.close()
        self.open()

    def audited(self, event_type: str) -> list:
        return [e for e in self.audit.entries() if e.event_type == event_type]


@pytest.fixture
async def node(tmp_path: Path, receiver: Receiver):
    n = Node(tmp_path, receiver.url)
    yield n
    await n.notifier.stop()
    n.store.close()


async def eventually(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_delivery_is_signed_and_carries_the_headers_and_json_body(node: Node, receiver: Receiver):
    [n] = node.outbox.enqueue("emergency.activated", PAYLOAD)
    assert await node.notifier.deliver_due() == 1
    [req] = receiver.requests
    assert req.path == "/hooks/sightline?token=query-part"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers[EVENT_HEADER] == "emergency.activated"
    assert req.headers[DELIVERY_HEADER] == n.id
    assert verify(SECRET, req.body, req.headers[SIGNATURE_HEADER], now=time.time())
    assert not verify("another secret", req.body, req.headers[SIGNATURE_HEADER], now=time.time())
    assert json.loads(req.body) == {
        "id": n.id,
        "topic": "emergency.activated",
        "created": n.created.isoformat(),
        "payload": PAYLOAD,
    }
    got = node.outbox.get(n.id)
    assert got.delivered_at is not None and got.attempts == 1
    assert node.outbox.pending_count() == 0
    [entry] = node.audited("notification.delivered")
    assert entry.object == f"notification:{n.id}" and entry.actor_id == "system"
    assert entry.details["emergency"] == "em1" and entry.details["drill"] is True
    assert entry.details["receiver"] == f"http://127.0.0.1:{receiver.port}"  # host only, no path/query
    assert await node.notifier.deliver_due() == 0  # nothing is sent twice


async def test_server_errors_are_retried_with_backoff_until_delivered(node: Node, receiver: Receiver):
    receiver.statuses = [500, 500]
    [n] = node.outbox.enqueue("emergency.extended", PAYLOAD)
    await node.notifier.start()
    await eventually(lambda: node.outbox.get(n.id).delivered_at is not None)
    assert len(receiver.requests) == 3
    assert {r.headers[DELIVERY_HEADER] for r in receiver.requests} == {n.id}
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9, gaps  # 0.05 s, then 0.1 s
    got = node.outbox.get(n.id)
    assert got.attempts == 3 and got.last_error == "HTTP 500"
    assert len(node.audited("notification.delivered")) == 1  # audited once, not per retry


async def test_notifications_survive_a_restart_and_are_not_sent_again(node: Node, receiver: Receiver):
    receiver.stop()  # the receiver is down while the first gateway runs
    first = node.outbox.enqueue("emergency.activated", PAYLOAD)
    second = node.outbox.enqueue("emergency.all_clear", PAYLOAD)
    await node.notifier.start()
    await eventually(lambda: node.outbox.get(first[0].id).attempts >= 2)
    assert "ConnectError" in node.outbox.get(first[0].id).last_error
    await node.restart()

    receiver.start()
    assert node.outbox.pending_count() == 2
    await node.notifier.start()
    await eventually(lambda: node.outbox.pending_count() == 0)
    sent = [r.headers[DELIVERY_HEADER] for r in receiver.requests]
    assert sent == [first[0].id, second[0].id]  # in order, once each
    await node.restart()
    await node.notifier.start()
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 2  # delivery was recorded: no duplicate after a restart


async def test_stop_abandons_an_in_flight_delivery_which_goes_out_after_restart(tmp_path: Path):
    """A receiver that hangs past the stop grace: the row stays pending, nothing is lost."""
    hang = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hang.wait(5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = Node(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        node.notifier._stop_grace = 0.1
        [n] = node.outbox.enqueue("emergency.activated", PAYLOAD)
        await node.notifier.start()
        await asyncio.sleep(0.2)
        await node.notifier.stop()
        assert node.outbox.get(n.id).pending and node.outbox.get(n.id).attempts == 0
        hang.set()
        await node.restart()
        assert await node.notifier.deliver_due() == 1
        assert node.outbox.get(n.id).delivered_at is not None
    finally:
        hang.set()
        server.shutdown()
        server.server_close()
        await node.notifier.stop()
        node.store.close()


async def test_gives_up_after_max_attempts_audits_once_and_counts_dead(tmp_path: Path, receiver: Receiver):
    receiver.default = 503
    node = Node(tmp_path, receiver.url, max_attempts=3)
    try:
        [n] = node.outbox.enqueue("emergency.cancelled", PAYLOAD)
        await node.notifier.start()
        await eventually(lambda: node.outbox.get(n.id).dead)
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == 3
        [entry] = node.audited("notification.dead")
        assert entry.outcome == "failure" and entry.reason == "HTTP 503"
        assert node.audited("notification.delivered") == []
        text = node.metrics.render().decode()
        assert 'sightline_notifications{state="dead"} 1.0' in text
        assert 'sightline_notifications{state="pending"} 0.0' in text
    finally:
        await node.notifier.stop()
        node.store.close()


async def test_pending_gauge(node: Node, receiver: Receiver):
    node.outbox.enqueue("emergency.activated", PAYLOAD)
    node.outbox.enqueue("emergency.closed", PAYLOAD)
    assert 'sightline_notifications{state="pending"} 2.0' in node.metrics.render().decode()
    await node.notifier.deliver_due()
    await node.notifier.deliver_due()
    assert 'sightline_notifications{state="pending"} 0.0' in node.metrics.render().decode()


async def test_a_secret_that_cannot_be_opened_fails_deliveries_not_the_gateway(tmp_path: Path, receiver: Receiver):
    node = Node(tmp_path, receiver.url)
    try:
        other = CredentialBox(Fernet.generate_key())  # another node's key
        webhook = WebhookConfig(id="cad", url=receiver.url, topics=frozenset({"*"}), sealed_secret=other.seal("x"))
        notifier = Notifier(node.outbox, [webhook], node.box, poll_interval=0.02)
        [n] = node.outbox.enqueue("emergency.activated", PAYLOAD)
        await notifier.deliver_due()
        await notifier.stop()
        assert receiver.requests == []
        assert "cannot be decrypted" in node.outbox.get(n.id).last_error
    finally:
        node.store.close()


async def test_an_unconfigured_subscriber_fails_its_rows(node: Node, receiver: Receiver):
    outbox = Outbox(node.store, SystemClock(), lambda topic: ["removed-webhook"])
    [n] = outbox.enqueue("emergency.activated", PAYLOAD)
    await node.notifier.deliver_due()
    assert receiver.requests == []
    assert "not configured" in node.outbox.get(n.id).last_error


async def test_redirects_are_not_followed(node: Node, receiver: Receiver):
    receiver.statuses = [302]
    [n] = node.outbox.enqueue("emergency.activated", PAYLOAD)
    await node.notifier.deliver_due()
    assert len(receiver.requests) == 1 and node.outbox.get(n.id).last_error == "HTTP 302"


async def test_the_secret_never_reaches_logs_or_the_database(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)  # including httpx/httpcore debug output
    receiver.statuses = [500]
    node = Node(tmp_path, receiver.url)
    try:
        [n] = node.outbox.enqueue("emergency.activated", PAYLOAD)
        await node.notifier.start()
        await eventually(lambda: node.outbox.get(n.id).delivered_at is not None)
        receiver.stop()  # and a connection failure too
        [m] = node.outbox.enqueue("emergency.all_clear", PAYLOAD)
        await eventually(lambda: node.outbox.get(m.id).attempts >= 2)
        await node.notifier.stop()
        assert "webhook cad" in caplog.text  # the logs do talk about the deliveries...
        assert SECRET not in caplog.text  # ...but never show the secret
        assert SECRET not in repr(node.webhook)
        node.store.close()
        for path in tmp_path.glob("sightline.db*"):
            assert SECRET.encode() not in path.read_bytes(), path
    finally:
        await node.notifier.stop()
