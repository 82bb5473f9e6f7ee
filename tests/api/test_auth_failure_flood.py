"""Repeated authentication failures: one audit entry per source and minute with a count."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

import gateway.app
from gateway.config import load_config
from gateway.identity.failures import FailureSummary
from gateway.runtime import Gateway
from tests.web_helpers import start_web_gateway, stop


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:  # a minute boundary
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    def __init__(self) -> None:
        self.entries: list[dict] = []

    def append(self, event_type, **fields):
        self.entries.append({"event_type": event_type, **fields})


def test_the_first_failure_of_a_minute_is_written_and_the_rest_summarised() -> None:
    clock, audit = Clock(), Recorder()
    summary = FailureSummary(audit, now=clock)  # type: ignore[arg-type]
    assert summary.first("192.0.2.1", kind="bearer token", reason="bad signature")
    assert summary.first("192.0.2.2", kind="bearer token", reason="expired")  # another source
    assert summary.first("192.0.2.1", kind="session cookie", reason="unknown")  # another kind
    for i in range(5):
        clock.t += 1
        assert not summary.first("192.0.2.1", kind="bearer token", reason="expired" if i else "bad signature")
    assert summary.flush() == 0 and audit.entries == []  # the minute is still open
    clock.t += 60
    assert summary.flush() == 1  # sources with nothing more to tell write nothing
    (entry,) = audit.entries
    assert entry["event_type"] == "auth.failures" and entry["source"] == "192.0.2.1"
    assert entry["outcome"] == "denied" and entry["object"] == "source:192.0.2.1"
    d = entry["details"]
    assert d["count"] == 5 and d["kind"] == "bearer token" and d["reasons"] == {"bad signature": 1, "expired": 4}
    assert d["minute"] == "2027-01-15T08:00:00+00:00" and d["first"] == "2027-01-15T08:00:00+00:00"
    assert d["last"] == "2027-01-15T08:00:05+00:00"
    # a new minute starts afresh; a failure after a closed minute also writes its summary
    assert summary.first("192.0.2.1", kind="bearer token", reason="x")
    assert not summary.first("192.0.2.1", kind="bearer token", reason="x")
    clock.t += 60
    assert summary.first("192.0.2.1", kind="bearer token", reason="x")
    assert len(audit.entries) == 2 and audit.entries[1]["details"]["count"] == 1
    assert not summary.first("192.0.2.1", kind="bearer token", reason="x")
    assert summary.flush(everything=True) == 1  # at stop: the open minute too
    assert summary.flush(everything=True) == 0


def test_many_sources_share_one_bucket_past_the_limit() -> None:
    clock, audit = Clock(), Recorder()
    summary = FailureSummary(audit, now=clock, max_sources=3)  # type: ignore[arg-type]
    written = [summary.first(f"2001:db8::{i}", kind="bearer token", reason="bad") for i in range(100)]
    assert written == [True] * 4 + [False] * 96  # three sources, then one "other sources" entry
    assert summary.flush(everything=True) == 1
    (entry,) = audit.entries
    assert entry["source"] is None and entry["details"]["address"] == "other sources"
    assert entry["details"]["count"] == 96


async def test_the_running_gateway_writes_the_summary_once_the_minute_closes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gateway.app, "FAILURE_FLUSH_SECONDS", 0.1)
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        clock = Clock(time.time())
        wg.app.state.auth_failures._now = clock
        transport = httpx.ASGITransport(app=wg.app, client=("198.51.100.25", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for _ in range(4):
                assert (await client.get("/api/v1/cameras", headers={"Authorization": "Bearer x"})).status_code == 401

        def summaries():
            return [e for e in wg.gateway.audit.entries(limit=100_000) if e.event_type == "auth.failures"]

        await asyncio.sleep(0.5)
        assert summaries() == []  # the minute is still open
        clock.t += 60
        for _ in range(50):
            if summaries():
                break
            await asyncio.sleep(0.1)
        (entry,) = summaries()
        assert entry.source == "198.51.100.25" and entry.details["count"] == 3
    finally:
        await stop(server, task)


@pytest.fixture
async def web(tmp_path):
    wg, server, task = await start_web_gateway(tmp_path)
    stopped = False

    async def halt() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await stop(server, task)

    wg.halt = halt  # type: ignore[attr-defined]
    yield wg
    await halt()


REQUESTS = 10_000


async def test_ten_thousand_bad_tokens_add_a_handful_of_entries(web) -> None:
    wg = web
    gw = wg.gateway
    before = gw.audit.entries(limit=100_000)[-1].seq
    metric = "sightline_auth_failures_total"
    failures_before = gw.metrics.registry.get_sample_value(metric) or 0
    tokens = ["garbage", "a.b.c", gw.tokens.issue("admin", ttl=600)[0][:-4] + "AAAA"]
    transport = httpx.ASGITransport(app=wg.app, client=("198.51.100.23", 40000))
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def one(i: int) -> int:
            r = await client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {tokens[i % 3]}"})
            return r.status_code

        statuses: list[int] = []
        for start in range(0, REQUESTS, 200):
            statuses += await asyncio.gather(*(one(i) for i in range(start, min(start + 200, REQUESTS))))
    elapsed = time.monotonic() - started
    assert statuses == [401] * REQUESTS
    assert elapsed < 180, f"{REQUESTS} refusals took {elapsed:.0f} s"
    assert gw.metrics.registry.get_sample_value(metric) - failures_before == REQUESTS  # metrics count each one

    await wg.halt()  # stopping writes the summary of the minute still open
    reopened = Gateway(load_config(gw.config.path))
    try:
        added = [e for e in reopened.audit.entries(after_seq=before, limit=100_000) if e.source == "198.51.100.23"]
        assert reopened.audit.verify().ok
    finally:
        reopened.store.close()
    full = [e for e in added if e.event_type == "auth.failure"]
    summaries = [e for e in added if e.event_type == "auth.failures"]
    minutes = int(elapsed // 60) + 2
    assert 1 <= len(full) <= minutes and len(summaries) <= minutes, [(e.event_type, e.details) for e in added]
    assert len(added) == len(full) + len(summaries)
    assert len(full) + sum(e.details["count"] for e in summaries) == REQUESTS
    assert all(e.details["kind"] == "bearer token" for e in summaries)
    assert sum(sum(e.details["reasons"].values()) for e in summaries) == REQUESTS - len(full)


async def test_forged_cookies_client_secrets_and_refused_sign_ins_are_summarised_too(web) -> None:
    wg = web
    before = wg.gateway.audit.entries(limit=100_000)[-1].seq
    transport = httpx.ASGITransport(app=wg.app, client=("198.51.100.24", 40000))
    each = 300
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for i in range(each):
            r = await client.get("/api/v1/emergencies", headers={"Cookie": f"sightline_session=forged-{i}"})
            assert r.status_code == 401
            r = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("records", f"x{i}"))
            assert r.status_code == 401
            r = await client.post(
                "/api/v1/auth/login", json={"username": "principal", "password": f"guess-{i}", "totp": "000000"}
            )
            assert r.status_code == (401 if i < 5 else 429)
    wg.app.state.auth_failures.flush(everything=True)
    added = [e for e in wg.gateway.audit.entries(after_seq=before, limit=100_000) if e.source == "198.51.100.24"]
    assert len(added) <= 5 + 3 * 4, [(e.event_type, e.reason) for e in added]  # 5 wrong passwords, then per kind/minute
    summaries = [e for e in added if e.event_type == "auth.failures"]
    counted = {
        kind: sum(e.details["count"] for e in summaries if e.details["kind"] == kind)
        for kind in ("session cookie", "client credentials", "refused sign-in")
    }
    full = {
        "session cookie": sum(e.event_type == "auth.failure" for e in added),
        "client credentials": sum(e.event_type == "auth.token_issued" for e in added),
        "refused sign-in": sum(e.event_type == "auth.login" and "too many" in (e.reason or "") for e in added),
    }
    assert {kind: full[kind] + counted[kind] for kind in full} == {
        "session cookie": each,
        "client credentials": each,
        "refused sign-in": each - 5,
    }
