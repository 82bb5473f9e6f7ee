"""The notification outbox (emergency/outbox.py) on the SQLite store, with a fake clock."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from emergency import migrations
from emergency.clock import FakeClock
from emergency.model import Action
from emergency.outbox import Outbox
from emergency.sqlite_store import SqliteStore

PAYLOAD = {"emergency": {"id": "e1", "building": "hs", "action": Action.LOCKDOWN, "drill": False}, "at": "now"}


class Boom(Exception):
    pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "db.sqlite")
    yield s
    s.close()


def subscribers(topic: str) -> list[str]:
    return {"emergency.activated": ["cad", "attorney"], "emergency.closed": []}.get(topic, ["cad"])


def make(store, clock, **kw) -> Outbox:
    return Outbox(store, clock, subscribers, jitter=0.0, **kw)


def test_enqueue_makes_one_row_per_subscriber_with_plain_json_payload(store, clock):
    outbox = make(store, clock)
    rows = outbox.enqueue("emergency.activated", PAYLOAD)
    assert [n.subscriber for n in rows] == ["cad", "attorney"]
    assert len({n.id for n in rows}) == 2
    assert rows[0].payload["emergency"]["action"] == "LOCKDOWN"  # enum stored as its value
    assert all(n.attempts == 0 and n.delivered_at is None and n.next_attempt == clock.now() for n in rows)
    assert outbox.pending_count() == 2
    assert outbox.due() == rows  # what comes back is exactly what was enqueued
    assert outbox.enqueue("emergency.closed", PAYLOAD) == []
    assert outbox.pending_count() == 2


def test_enqueue_inside_rolled_back_transaction_leaves_nothing(store, clock):
    outbox = make(store, clock)
    with pytest.raises(Boom), store.transaction():
        outbox.enqueue("emergency.activated", PAYLOAD)
        assert outbox.pending_count() == 2  # visible inside the transaction
        raise Boom
    assert outbox.pending_count() == 0
    assert outbox.due() == []


def test_enqueue_inside_committed_transaction_is_pending(store, clock):
    outbox = make(store, clock)
    with store.transaction():
        outbox.enqueue("emergency.activated", PAYLOAD)
    assert outbox.pending_count() == 2


def test_enqueue_rolls_back_with_the_change_it_belongs_to(store, clock):
    """The change and its notification are one unit: the outer failure undoes both."""
    outbox = make(store, clock)
    with pytest.raises(Boom), store.transaction():
        outbox.enqueue("emergency.activated", PAYLOAD)
        with store.transaction():  # a nested step that commits its savepoint...
            outbox.enqueue("emergency.extended", PAYLOAD)
        raise Boom  # ...is still undone by the outer rollback
    assert outbox.pending_count() == 0


def test_enqueue_is_not_committed_until_the_caller_commits(tmp_path, clock):
    path = tmp_path / "db.sqlite"
    writer, reader = SqliteStore(path), SqliteStore(path)
    try:
        outbox = make(writer, clock)
        with writer.transaction():
            outbox.enqueue("emergency.activated", PAYLOAD)
            assert make(reader, clock).pending_count() == 0  # another connection sees nothing yet
        assert make(reader, clock).pending_count() == 2
    finally:
        writer.close()
        reader.close()


def test_failed_backs_off_exponentially_up_to_the_cap(store, clock):
    outbox = make(store, clock, backoff_base=2, backoff_cap=10, max_attempts=100)
    [n] = outbox.enqueue("emergency.extended", PAYLOAD)
    waits = []
    for _ in range(5):
        updated = outbox.failed(n.id, "HTTP 500")
        waits.append((updated.next_attempt - clock.now()).total_seconds())
        assert outbox.due() == []
        clock.advance(waits[-1])
        assert [d.id for d in outbox.due()] == [n.id]
    assert waits == [2, 4, 8, 10, 10]
    assert updated.attempts == 5 and updated.last_error == "HTTP 500"


def test_jitter_shortens_the_wait_deterministically_with_a_seeded_rng(store, clock):
    a = Outbox(store, clock, subscribers, jitter=0.5, rng=random.Random(7))
    b = Outbox(store, clock, subscribers, jitter=0.5, rng=random.Random(7))
    waits_a = [a.backoff(k) for k in range(1, 12)]
    assert waits_a == [b.backoff(k) for k in range(1, 12)]
    for k, wait in enumerate(waits_a, start=1):
        full = min(300.0, 2.0 * 2 ** (k - 1))
        assert full * 0.5 <= wait <= full


def test_after_max_attempts_the_row_is_dead_and_stays_visible(store, clock):
    outbox = make(store, clock, backoff_base=1, backoff_cap=1, max_attempts=3)
    [n] = outbox.enqueue("emergency.extended", PAYLOAD)
    for _ in range(3):
        clock.advance(1)
        updated = outbox.failed(n.id, "ConnectError")
    assert updated.dead and updated.attempts == 3
    clock.advance(3600)
    assert outbox.due() == []
    assert outbox.pending_count() == 0 and outbox.dead_count() == 1
    assert [d.id for d in outbox.dead()] == [n.id]
    assert outbox.failed(n.id, "again").attempts == 3  # a dead row is not retried further


def test_delivered_is_final_and_counts_the_attempt(store, clock):
    outbox = make(store, clock)
    [n] = outbox.enqueue("emergency.extended", PAYLOAD)
    outbox.failed(n.id, "HTTP 503")
    clock.advance(5)
    outbox.delivered(n.id)
    got = outbox.get(n.id)
    assert got.delivered_at == clock.now() and got.attempts == 2 and not got.pending
    clock.advance(5)
    outbox.delivered(n.id)  # idempotent: keeps the first time
    assert outbox.get(n.id).delivered_at == got.delivered_at
    assert outbox.failed(n.id, "late failure report").delivered_at == got.delivered_at
    assert outbox.pending_count() == 0 and outbox.due() == []
    with pytest.raises(KeyError):
        outbox.delivered("no-such-id")


def test_each_subscriber_gets_its_notifications_in_order(store, clock):
    """An all-clear must not overtake the activation: only the oldest pending row of a
    subscriber is due; other subscribers are not held up."""
    outbox = make(store, clock, max_attempts=2)
    [act_cad, act_att] = outbox.enqueue("emergency.activated", PAYLOAD)
    [clear_cad] = outbox.enqueue("emergency.all_clear", PAYLOAD)
    assert {n.id for n in outbox.due()} == {act_cad.id, act_att.id}
    outbox.failed(act_cad.id, "HTTP 500")
    outbox.delivered(act_att.id)
    assert outbox.due() == []  # cad's all-clear waits behind its activation
    clock.advance(60)
    assert [n.id for n in outbox.due()] == [act_cad.id]
    outbox.failed(act_cad.id, "HTTP 500")  # second failure: dead, stops blocking
    assert [n.id for n in outbox.due()] == [clear_cad.id]


def test_rows_survive_reopening_the_database(tmp_path, clock):
    path = tmp_path / "db.sqlite"
    first = SqliteStore(path)
    [n, _] = make(first, clock).enqueue("emergency.activated", PAYLOAD)
    first.close()
    second = SqliteStore(path)
    try:
        outbox = make(second, clock)
        assert outbox.pending_count() == 2
        assert outbox.get(n.id) == n
    finally:
        second.close()


def test_schema_is_added_to_an_existing_database(tmp_path, clock):
    """A database from before the outbox gains the table when upgraded (a store opening
    it refuses until then: schema changes are migrations); reopening is harmless."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE emergencies (id TEXT PRIMARY KEY, building TEXT NOT NULL, state TEXT NOT NULL, "
        "action TEXT NOT NULL, incident_type TEXT NOT NULL, drill INTEGER NOT NULL, threat_basis TEXT, "
        "declared_by TEXT NOT NULL, declared_at TEXT NOT NULL, confirm_deadline TEXT NOT NULL, "
        "activated_at TEXT, expires_at TEXT, ended_at TEXT, end_reason TEXT)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(migrations.SchemaBehind):
        SqliteStore(path)
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.upgrade_sqlite(conn)
    conn.close()
    for _ in range(2):
        s = SqliteStore(path)
        make(s, clock).enqueue("emergency.extended", PAYLOAD)
        s.close()
    s = SqliteStore(path)
    assert make(s, clock).pending_count() == 2
    s.close()


def test_due_respects_limit_and_time(store, clock):
    outbox = Outbox(store, clock, lambda topic: [f"s{i}" for i in range(5)])
    outbox.enqueue("emergency.activated", PAYLOAD)
    assert len(outbox.due(limit=3)) == 3
    first = outbox.due(limit=1)[0]
    outbox.failed(first.id, "x")
    assert first.id not in {n.id for n in outbox.due()}
    clock.advance(timedelta(minutes=10).total_seconds())
    assert first.id in {n.id for n in outbox.due()}


def test_bad_settings_are_refused(store, clock):
    for kw in ({"backoff_base": 0}, {"backoff_base": 10, "backoff_cap": 5}, {"max_attempts": 0}, {"jitter": 1.0}):
        with pytest.raises(ValueError):
            Outbox(store, clock, subscribers, **kw)
    with pytest.raises(ValueError):
        make(store, clock).enqueue("", PAYLOAD)
    with pytest.raises(TypeError):
        make(store, clock).enqueue("emergency.activated", {"x": object()})
