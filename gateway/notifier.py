"""Delivers the notification outbox to the site's webhooks, signed, retried, never lost.

Subscribers come from the site file::

    [[webhooks]]
    id = "cad"                                   # names the subscriber in the outbox and audit
    url = "https://cad.example.org/sightline"    # https (plain http only to this host)
    topics = ["emergency.activated", "emergency.all_clear"]   # or ["*"]
    secret = "enc:v1:..."                        # sealed; see seal_secret below

The secret is sealed with the node's credential key (``DATA_DIR/secrets``), like camera
passwords; a plain-text secret is refused when the site file is loaded. To seal one::

    python -c "from gateway.notifier import seal_secret; print(seal_secret('site.toml', 'the secret'))"

Each delivery is ``POST url`` with a JSON body ``{id, topic, created, payload}`` and the
headers ``X-Sightline-Signature`` (see :mod:`gateway.identity.signing`), ``X-Sightline-Event``
(the topic) and ``X-Sightline-Delivery`` (the notification id; delivery is
at-least-once, so receivers deduplicate on it). A 2xx answer is a delivery; anything
else, a timeout or a connection error is a failure the outbox retries with backoff.
Redirects are not followed. Logs, stored errors and audit entries name the webhook by id
and host, never its secret or the URL's path and query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import tomllib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock, SystemClock
from emergency.outbox import Notification, Outbox
from gateway.config import GatewayConfig, WebhookConfig
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 5.0
CONCURRENCY = 4
STOP_GRACE_SECONDS = 2.0
USER_AGENT = "Sightline-Notifier/1"


def seal_secret(config: GatewayConfig | str | Path, text: str) -> str:
    """The ``enc:v1:...`` form of a webhook secret for the site file's ``secret`` key.

    ``config`` is a loaded config or the site file's path (the path works while the file
    still holds a plain-text secret, which ``load_config`` refuses)."""
    if not isinstance(text, str) or not text:
        raise ValueError("a webhook secret must be a non-empty string")
    secrets_dir = config.secrets_dir if isinstance(config, GatewayConfig) else _secrets_dir_of(Path(config))
    return CredentialBox.for_dir(secrets_dir).seal(text)


def _secrets_dir_of(site_file: Path) -> Path:
    """Where ``load_config`` would put the secrets, read from the [gateway] table alone."""
    site_file = site_file.resolve()
    raw = tomllib.loads(site_file.read_text(encoding="utf-8"))
    data_dir: str = raw.get("gateway", {}).get("data_dir", ".")
    return (site_file.parent / data_dir).resolve() / "secrets"


def webhook_subscribers(webhooks: Sequence[WebhookConfig]) -> Callable[[str], list[str]]:
    """The outbox's ``subscribers(topic)``: ids of the webhooks that want ``topic``."""
    webhooks = tuple(webhooks)
    return lambda topic: [w.id for w in webhooks if w.wants(topic)]


def delivery_body(n: Notification) -> bytes:
    return json.dumps(
        {"id": n.id, "topic": n.topic, "created": n.created.isoformat(), "payload": n.payload},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")


def _where(url: str) -> str:
    """scheme://host[:port] of a URL: enough to tell which receiver, nothing more."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Notifier:
    """Polls the outbox and delivers due notifications; start/stop from the gateway."""

    def __init__(
        self,
        outbox: Outbox,
        webhooks: Sequence[WebhookConfig],
        box: CredentialBox,
        *,
        clock: Clock | None = None,
        audit: AuditLog | None = None,
        metrics: Metrics | None = None,
        poll_interval: float = POLL_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        concurrency: int = CONCURRENCY,
        stop_grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.outbox = outbox
        self._webhooks = {w.id: w for w in webhooks}
        self._clock = clock or SystemClock()
        self._audit = audit
        self._poll = poll_interval
        self._timeout = timeout
        self._concurrency = max(1, concurrency)
        self._stop_grace = stop_grace
        self._secrets: dict[str, str] = {}
        self._secret_errors: dict[str, str] = {}
        for w in webhooks:
            try:
                self._secrets[w.id] = box.open(w.sealed_secret)
            except CredentialError:
                # Deliveries to it fail (and are retried) rather than the gateway refusing to start.
                self._secret_errors[w.id] = (
                    f"webhook {w.id}: its secret cannot be decrypted with this node's key "
                    "(secrets/camera-credentials.key); seal it again with gateway.notifier.seal_secret"
                )
                log.error("%s", self._secret_errors[w.id])
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        if metrics is not None:
            metrics.notifications.labels(state="pending").set_function(self._counter("pending"))
            metrics.notifications.labels(state="dead").set_function(self._counter("dead"))

    # lifecycle

    async def start(self) -> None:
        if self._task is not None:
            return
        self._open_client()
        self._task = asyncio.create_task(self._poll_forever(), name="sightline-notifier")

    async def stop(self) -> None:
        """Stops polling; lets deliveries in flight finish for ``stop_grace`` seconds, then
        abandons them (they stay pending and go out after the next start)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        tasks = list(self._in_flight.values())
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=self._stop_grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver_due(self) -> int:
        """One pass: attempt every due notification now and wait for the outcomes.
        Returns how many were attempted. Used by the poll loop's callers and tests."""
        self._open_client()
        tasks = self._launch_due()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    # internals

    def _open_client(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self._concurrency),
                headers={"User-Agent": USER_AGENT},
            )
            self._semaphore = asyncio.Semaphore(self._concurrency)

    async def _poll_forever(self) -> None:
        while True:
            try:
                self._launch_due()
            except Exception:
                log.exception("notification outbox poll failed; retrying")
            await asyncio.sleep(self._poll)

    def _launch_due(self) -> list[asyncio.Task[None]]:
        """Starts a delivery for each due row not already in flight (a slow receiver holds
        up only its own notifications; the outbox hands out one row per subscriber)."""
        launched = []
        for n in self.outbox.due(limit=100):
            if n.id in self._in_flight:
                continue
            task = asyncio.create_task(self._deliver(n), name=f"sightline-notify-{n.id}")
            self._in_flight[n.id] = task
            task.add_done_callback(partial(self._landed, n.id))
            launched.append(task)
        return launched

    def _landed(self, notification_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(notification_id, None)

    async def _deliver(self, n: Notification) -> None:
        assert self._semaphore is not None
        async with self._semaphore:
            try:
                await self._attempt(n)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification %s: recording the delivery outcome failed", n.id)

    async def _attempt(self, n: Notification) -> None:
        webhook = self._webhooks.get(n.subscriber)
        if webhook is None:
            self._failed(n, None, f"webhook {n.subscriber!r} is not configured on this node")
            return
        secret = self._secrets.get(webhook.id)
        if secret is None:
            self._failed(n, webhook, self._secret_errors.get(webhook.id, "no secret"))
            return
        body = delivery_body(n)
        t = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, t),
            EVENT_HEADER: n.topic,
            DELIVERY_HEADER: n.id,
        }
        assert self._client is not None
        try:
            async with self._client.stream("POST", webhook.url, content=body, headers=headers) as response:
                status = response.status_code  # the body is never read: we only need the status
        except Exception as exc:  # every failure is retried, whatever raised it
            error = _error_text(exc, secret, webhook.url)
        else:
            if 200 <= status < 300:
                self._delivered(n, webhook)
                return
            error = f"HTTP {status}"
        self._failed(n, webhook, error)

    def _delivered(self, n: Notification, webhook: WebhookConfig) -> None:
        with self.outbox.transaction():
            self.outbox.delivered(n.id)
            if self._audit is not None:
                self._audit.append(
                    AuditEvent.NOTIFICATION_DELIVERED,
                    actor_id="system",
                    object=f"notification:{n.id}",
                    details={**self._about(n), "attempts": n.attempts + 1, "receiver": _where(webhook.url)},
                )
        log.info("webhook %s: delivered %s %s (attempt %d)", webhook.id, n.topic, n.id, n.attempts + 1)

    def _failed(self, n: Notification, webhook: WebhookConfig | None, error: str) -> None:
        with self.outbox.transaction():
            updated = self.outbox.failed(n.id, error)
            if updated.dead and self._audit is not None:
                self._audit.append(
                    AuditEvent.NOTIFICATION_DEAD,
                    actor_id="system",
                    object=f"notification:{n.id}",
                    outcome="failure",
                    reason=updated.last_error,
                    details={
                        **self._about(n),
                        "attempts": updated.attempts,
                        "receiver": _where(webhook.url) if webhook else None,
                    },
                )
        if updated.dead:
            log.error(
                "webhook %s: gave up on %s %s after %d attempts: %s",
                n.subscriber,
                n.topic,
                n.id,
                updated.attempts,
                updated.last_error,
            )
        else:
            wait = (updated.next_attempt - self._clock.now()).total_seconds()
            log.warning(
                "webhook %s: %s %s attempt %d failed: %s; retrying in %.1f s",
                n.subscriber,
                n.topic,
                n.id,
                updated.attempts,
                updated.last_error,
                max(0.0, wait),
            )

    @staticmethod
    def _about(n: Notification) -> dict[str, Any]:
        emergency = n.payload.get("emergency") if isinstance(n.payload, dict) else None
        emergency = emergency if isinstance(emergency, dict) else {}
        return {
            "topic": n.topic,
            "subscriber": n.subscriber,
            "emergency": emergency.get("id"),
            "drill": emergency.get("drill", n.payload.get("drill") if isinstance(n.payload, dict) else None),
        }

    def _counter(self, state: str) -> Callable[[], float]:
        def count() -> float:
            try:
                return float(self.outbox.count(state))
            except Exception:  # a scrape must not fail because the store is closing
                return math.nan

        return count


def _error_text(exc: BaseException, secret: str, url: str) -> str:
    """What went wrong, for logs and the outbox row: no secret, no URL path or query."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if url:
        text = text.replace(url, _where(url))
    return text.replace(secret, "[redacted]")
