"""``kill -9`` during a live view: the next start of the node closes the session in the
audit log (``view.ended``, reason "gateway stopped unexpectedly") with an end no later
than its last heartbeat and within the heartbeat interval of the kill, so the disclosure
record's span has an end. A clean stop (SIGTERM) closes the session with its real reason
and leaves nothing for the next start to close. Real ``sightline serve`` processes, a
real WHEP viewer; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emergency.audit import AuditEvent
from emergency.live_views import CRASH_REASON, HEARTBEAT_SECONDS
from gateway.config import load_config
from gateway.runtime import TICK_SECONDS, open_store, token_authority
from tests.api.test_activation import declare
from tests.conftest import free_port
from tests.whep_client import WhepViewer

ROOT = Path(__file__).resolve().parents[2]
# The ticker beats at its first tick at least HEARTBEAT_SECONDS after the last beat; under
# load a tick can come late, so the bound allows one tick and a second of scheduling.
LATEST_BEAT_BEFORE_KILL = timedelta(seconds=HEARTBEAT_SECONDS + TICK_SECONDS + 1.0)


class Served:
    """``sightline serve`` for a site file, in its own process (output in a log file)."""

    def __init__(self, config: Path, run: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"serve-{run}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", str(self.port)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"serve did not answer /healthz within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> datetime:
        """SIGKILL: the process gets no chance to write anything. The time it was sent."""
        killed = datetime.now(UTC)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)
        return killed

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        assert code in (0, -signal.SIGTERM), self.log.read_text()  # uvicorn re-raises the signal once done
        assert "Application shutdown complete" in self.log.read_text()

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, site_file: Any) -> Path:
    if request.param == "sqlite":
        path: Path = site_file()
    else:
        pg_url = request.getfixturevalue("pg_url")
        path = site_file({'node = "demo"': f'node = "demo"\ndatabase = "{pg_url}"'})
    return path


@pytest.fixture
async def serve(site: Path) -> AsyncIterator[Any]:
    started: list[Served] = []

    async def start() -> Served:
        served = Served(site, len(started))
        started.append(served)
        await served.ready()
        return served

    yield start
    for served in started:
        served.end()


def person_token(site: Path, user: str) -> str:
    """A token as a person signed in with password and code holds, its sign-in recorded in
    the site's database (which the served node reads)."""
    config = load_config(site)
    store = open_store(config)
    try:
        return token_authority(config, store).issue(user, ttl=600, amr=("pwd", "otp", "mfa"))[0]
    finally:
        store.close()


def client(served: Served, site: Path, user: str) -> httpx.AsyncClient:
    token = person_token(site, user)
    return httpx.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15)


async def watch(served: Served, site: Path) -> tuple[WhepViewer, str]:
    """An officer's live view of the front entrance, with video arriving; its session id."""
    token = person_token(site, "officer")
    viewer = WhepViewer(served.base_url, "hs-front", token, stream="sub")
    response = await viewer.start()
    assert response.status_code == 201, response.text
    await viewer.wait_frames(5, timeout=20)
    assert viewer.location is not None
    return viewer, viewer.location.rsplit("/", 1)[1]


async def entries_of(auditor: httpx.AsyncClient, event: AuditEvent) -> list[dict[str, Any]]:
    r = await auditor.get("/api/v1/audit/events", params={"event_type": str(event), "limit": 1000})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["entries"]
    return found


async def spans_of(auditor: httpx.AsyncClient, emergency: str) -> list[dict[str, Any]]:
    """The officer's spans on the front entrance in the disclosure record."""
    r = await auditor.get(f"/api/v1/emergencies/{emergency}/disclosure")
    assert r.status_code == 200, r.text
    [officer] = [v for v in r.json()["viewers"] if v["officer"] == "officer"]
    [camera] = [c for c in officer["cameras"] if c["camera"] == "hs-front"]
    spans: list[dict[str, Any]] = camera["spans"]
    return spans


async def test_kill_9_during_a_live_view_is_closed_at_the_last_heartbeat(site: Path, serve: Any) -> None:
    first = await serve()
    async with client(first, site, "admin") as admin:
        emergency = await declare(admin, "LOCKDOWN")
    viewer, session = await watch(first, site)
    try:
        await asyncio.sleep(HEARTBEAT_SECONDS + 1.5)  # the ticker beats at least once more
        assert len(viewer.frame_times) > 20, "video kept arriving"
        killed = first.kill()
    finally:
        await viewer.close()

    second = await serve()
    async with client(second, site, "auditor") as auditor:
        [closed] = [e for e in await entries_of(auditor, AuditEvent.VIEW_ENDED) if e["details"]["session"] == session]
        assert closed["reason"] == CRASH_REASON, closed
        assert closed["actor_id"] == "officer" and closed["object"] == "camera:hs-front"
        ended = datetime.fromisoformat(closed["details"]["ended"])
        assert ended <= killed, (ended, killed)
        assert killed - ended <= LATEST_BEAT_BEFORE_KILL, (ended, killed)
        assert datetime.fromisoformat(closed["details"]["last_heartbeat"]) == ended
        assert datetime.fromisoformat(closed["ts"]) > killed, "written by the next start"

        [crash] = await entries_of(auditor, AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY)
        assert crash["object"] == "node:demo" and crash["details"]["sessions"] == [session]
        assert "stopped unexpectedly" in crash["text"]

        [span] = await spans_of(auditor, emergency)
        assert span["end"] is not None, span
        assert datetime.fromisoformat(span["end"]) == ended
        assert span["seconds"] >= HEARTBEAT_SECONDS

    second.stop()
    third = await serve()  # nothing is left to close a second time
    async with client(third, site, "auditor") as auditor:
        assert len(await entries_of(auditor, AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY)) == 1
        assert [e["details"]["session"] for e in await entries_of(auditor, AuditEvent.VIEW_ENDED)] == [session]
    third.stop()
    verify = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--config", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_a_clean_stop_closes_live_views_with_their_real_reason(site: Path, serve: Any) -> None:
    first = await serve()
    async with client(first, site, "admin") as admin:
        emergency = await declare(admin, "LOCKDOWN")
    viewer, session = await watch(first, site)
    try:
        first.stop()
    finally:
        await viewer.close()

    second = await serve()
    async with client(second, site, "auditor") as auditor:
        [closed] = [e for e in await entries_of(auditor, AuditEvent.VIEW_ENDED) if e["details"]["session"] == session]
        assert closed["reason"] == "gateway shutting down", closed
        assert "last_heartbeat" not in closed["details"]
        assert await entries_of(auditor, AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY) == []
        [span] = await spans_of(auditor, emergency)
        assert span["end"] == closed["details"]["ended"]


async def test_a_view_that_cannot_be_recorded_is_not_served(site_file: Any, run_gateway: Any, monkeypatch) -> None:
    """The session's row and its view.started entry come first: if they cannot be written,
    the viewer gets an error and no video, and the camera's track is let go."""
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin:
        await declare(admin, "LOCKDOWN")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database is unavailable")

    monkeypatch.setattr(gw.gateway.live_views, "started", unavailable)
    viewer = WhepViewer(gw.base_url, "hs-front", gw.token("officer"), stream="sub")
    try:
        assert (await viewer.start()).status_code == 500
    finally:
        await viewer.close()
    assert len(gw.gateway.sessions) == 0
    assert gw.gateway.media.all_stats()[("hs-front", "sub")]["viewers"] == 0
