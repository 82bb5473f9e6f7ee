"""What only the PostgreSQL store has to handle: NUL characters, lost connections,
schema re-creation, time zones (a real server, a throwaway database per test)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import Invalid
from emergency.model import Action, Actor, IncidentType
from emergency.pg_store import PgStore
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site


def test_audit_entries_with_nul_characters_are_kept_exactly(postgres_backend):
    """Client-controlled text (a camera id from a URL, a source address) may hold NUL,
    which PostgreSQL text cannot: the entry is still recorded and still verifies."""
    store = postgres_backend.open()
    audit = AuditLog(store, FakeClock(), "node-a")
    audit.append(
        "view.denied",
        actor_id="officer",
        object="camera:\x00evil",
        outcome="denied",
        reason="no\x00grant",
        details={"camera": "a\x00b"},
    )
    audit.append("view.denied", actor_id="officer", object="camera:plain", outcome="denied")
    first, second = audit.entries()
    assert first.object == "camera:\x00evil" and first.reason == "no\x00grant" and first.details == {"camera": "a\x00b"}
    assert first.source is None and second.object == "camera:plain"
    assert audit.verify().ok
    [(escaped,)] = postgres_backend.execute("SELECT count(*) FROM audit_log WHERE nul_escaped")
    assert escaped == 1


def test_nul_in_domain_text_is_refused_as_invalid(postgres_backend):
    site = load_site(sample_site_data())
    store = postgres_backend.open()
    clock = FakeClock()
    audit = AuditLog(store, clock, "n")
    svc = EmergencyService(site, store, audit, clock)
    admin = Actor.from_account(site.accounts["admin"], mfa=True)
    with pytest.raises(Invalid):
        svc.declare(
            admin,
            building="lincoln-hs",
            action=Action.LOCKDOWN,
            incident_type=IncidentType.OTHER,
            threat_basis="bad\x00text",
        )
    assert svc.list() == []
    assert [e.event_type for e in audit.entries()] == ["declare.denied"]
    assert audit.verify().ok


def test_store_reconnects_after_losing_its_connection(postgres_backend):
    store = postgres_backend.open()
    audit = AuditLog(store, FakeClock(), "n")
    audit.append("one", actor_id="system")
    postgres_backend.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'sightline'"
    )
    with pytest.raises(psycopg.OperationalError):  # the write in flight fails, nothing half-done
        audit.append("two", actor_id="system")
    audit.append("three", actor_id="system")  # the next one gets a new connection
    assert [e.event_type for e in audit.entries()] == ["one", "three"]
    assert audit.verify().ok


def test_reopening_an_existing_database_is_harmless(postgres_backend):
    for i in range(3):
        store = postgres_backend.open()
        AuditLog(store, FakeClock(), "n").append(f"open.{i}", actor_id="system")
        store.close()
    store = postgres_backend.open()
    assert [e.seq for e in AuditLog(store, FakeClock(), "n").entries()] == [1, 2, 3]


def test_times_are_utc_whatever_the_server_time_zone(postgres_backend):
    postgres_backend.execute(
        "ALTER DATABASE " + postgres_backend.url.rsplit("/", 1)[1] + " SET TimeZone = 'America/Chicago'"
    )
    store = postgres_backend.open()
    now = datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert store.remember_receipt("o", "e", now)
    [(stored,)] = postgres_backend.execute("SELECT received AT TIME ZONE 'UTC' FROM trigger_receipts")
    assert stored == now.replace(tzinfo=None)
    site = load_site(sample_site_data())
    clock = FakeClock(now)
    svc = EmergencyService(site, store, AuditLog(store, clock, "n"), clock)
    admin = Actor.from_account(site.accounts["admin"], mfa=True)
    e = svc.declare(admin, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.OTHER)
    got = store.get_emergency(e.id)
    assert got == e and got.declared_at.tzinfo == UTC and got.declared_at.isoformat() == now.isoformat()


def test_unreachable_server_fails_fast():
    with pytest.raises(psycopg.OperationalError):
        PgStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
