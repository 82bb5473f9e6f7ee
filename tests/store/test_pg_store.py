"""The storage contract on both stores: SQLite (embedded default) and PostgreSQL (real
server, a throwaway database per test; see tests/conftest_pg.py).

Every test taking ``store_backend`` runs twice, ``[sqlite]`` and ``[postgres]``: the
domain (EmergencyService, AuditLog, Outbox, AccessRequests) must behave the same on both.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import Conflict
from emergency.events import GrantEnded, GrantStarted
from emergency.model import Action, Actor, IncidentType, PendingExtension, State
from emergency.outbox import Outbox
from emergency.requests import AccessRequests, RequestState
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site

HS_NORMAL = {"hs-parking", "hs-front", "hs-hall-a", "hs-gym", "hs-office"}
PAYLOAD = {"emergency": {"id": "e1", "building": "hs", "action": Action.LOCKDOWN, "drill": False}, "n": 1.5}


class Boom(Exception):
    pass


def subscribers(topic: str) -> list[str]:
    return ["cad", "attorney"]


def world(backend, clock=None, node="test-node", **policy):
    data = sample_site_data()
    data["policy"].update(policy)
    site = load_site(data)
    clock = clock or FakeClock()
    store = backend.open()
    audit = AuditLog(store, clock, node)
    outbox = Outbox(store, clock, subscribers, jitter=0.0)
    events: list[object] = []
    svc = EmergencyService(site, store, audit, clock, [events.append], outbox=outbox)
    requests = AccessRequests(site, store, audit, clock, svc)
    actors = {a.replace("-", "_"): Actor.from_account(acc, mfa=True) for a, acc in site.accounts.items()}
    return SimpleNamespace(
        site=site,
        clock=clock,
        store=store,
        audit=audit,
        outbox=outbox,
        svc=svc,
        requests=requests,
        events=events,
        **actors,
    )


def active(w, building="lincoln-hs", action=Action.LOCKDOWN):
    e = w.svc.declare(
        w.admin,
        building=building,
        action=action,
        incident_type=IncidentType.ARMED_INTRUDER,
        threat_basis="Caller reports a person with a handgun.",
    )
    return w.svc.confirm(w.admin, e.id)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


# the service lifecycle


def test_declare_confirm_all_clear_with_grants(store_backend):
    w = world(store_backend)
    e = w.svc.declare(
        w.principal, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.ARMED_INTRUDER
    )
    assert e.state is State.PENDING and w.svc.grants_for(w.officer) == []
    e = w.svc.confirm(w.admin, e.id)
    assert e.state is State.ACTIVE and e.activated_at == w.clock.now()
    [grant] = w.svc.grants_for(w.officer)
    assert grant.agency == "village-pd" and grant.camera_ids == HS_NORMAL
    assert (grant.starts, grant.expires) == (e.activated_at, e.expires_at)
    assert w.svc.decide_view(w.officer, "hs-front").allowed
    assert not w.svc.decide_view(w.outsider, "hs-front").allowed
    assert not w.svc.decide_view(w.officer, "hs-nurse").allowed
    assert w.svc.get(e.id) == e and w.svc.list(open_only=True) == [e]
    assert [g.grant for g in of(w.events, GrantStarted)] == [grant]

    w.clock.advance(120)
    cleared = w.svc.all_clear(w.admin, e.id)
    assert cleared.state is State.ALL_CLEAR and w.svc.grants_for(w.officer) == []
    [ended] = of(w.events, GrantEnded)
    assert ended.grant.id == grant.id and w.store.get_grant(grant.id).ended_at == w.clock.now()
    assert w.svc.list(open_only=True) == [] and w.svc.list() == [cleared]
    closed = w.svc.close(w.admin, e.id)
    assert closed.state is State.CLOSED
    types = [x.event_type for x in w.audit.entries()]
    for expected in (
        "emergency.declared",
        "emergency.activated",
        "grant.started",
        "grant.ended",
        "emergency.all_clear",
        "emergency.closed",
    ):
        assert expected in types
    assert w.audit.verify().ok
    assert w.outbox.pending_count() >= 2


def test_timebox_expiry_and_extension_round_trip(store_backend):
    w = world(store_backend, default_timebox_minutes=30, hard_max_minutes=60)
    e = active(w)
    w.clock.advance(60)
    beyond = w.svc.extend(w.admin, e.id, minutes=45, reason="suspect still inside")
    assert beyond.pending_extension is not None  # waits for a second administrator
    assert w.svc.get(e.id).pending_extension == beyond.pending_extension
    w.clock.advance(31 * 60)
    assert w.svc.grants_for(w.officer) == []  # expired; the emergency stays active
    assert w.svc.get(e.id).state is State.ACTIVE
    assert w.audit.verify().ok


def test_second_open_emergency_in_a_building_is_a_conflict(store_backend):
    w = world(store_backend)
    first = active(w)
    with pytest.raises(Conflict):
        w.svc.declare(w.admin, building="lincoln-hs", action=Action.SECURE, incident_type=IncidentType.OTHER)
    assert "declare.denied" in [x.event_type for x in w.audit.entries()]
    assert w.svc.get(first.id).state is State.ACTIVE  # the refusal changed nothing
    other = w.svc.declare(w.admin, building="washington-ms", action=Action.SECURE, incident_type=IncidentType.OTHER)
    assert other.state is State.PENDING
    w.svc.all_clear(w.admin, first.id)
    again = w.svc.declare(w.admin, building="lincoln-hs", action=Action.SECURE, incident_type=IncidentType.OTHER)
    assert again.state is State.PENDING
    with pytest.raises(Conflict):  # straight at the store too
        w.store.insert_emergency(replace(again, id="another-id"))
    assert w.audit.verify().ok


def test_restart_on_the_same_database_keeps_grants_and_the_chain(store_backend):
    clock = FakeClock()
    w = world(store_backend, clock=clock)
    e = active(w)
    [grant] = w.svc.grants_for(w.officer)
    w.store.close()

    clock.advance(60)
    again = world(store_backend, clock=clock, node="node-2")
    assert again.svc.get(e.id) == e
    assert again.svc.grants_for(again.officer) == [grant]
    assert again.svc.decide_view(again.officer, "hs-front").allowed
    again.audit.append("gateway.started", actor_id="system", object="node:node-2")
    again.store.close()

    clock.advance(2 * 3600)  # past the time-box while down: the grant expires on open
    third = world(store_backend, clock=clock, node="node-3")
    [ended] = of(third.events, GrantEnded)
    assert ended.grant.id == grant.id and ended.reason == "expired"
    assert not third.svc.grant_live(grant.id)
    result = third.audit.verify()
    assert result.ok and result.checked == len(third.audit.entries(limit=10_000))


def test_access_request_approval_declares(store_backend):
    w = world(store_backend)
    request = w.requests.submit(
        w.dispatcher, building="lincoln-hs", call_type="shots_fired", reason="911 caller hears shots in the gym"
    )
    assert w.requests.get(request.id) == request
    assert [r.id for r in w.requests.visible_to(w.admin, pending_only=True)] == [request.id]
    approved = w.requests.approve(w.admin, request.id)
    assert approved.state is RequestState.APPROVED and approved.emergency_id
    assert w.requests.get(request.id) == approved
    assert w.requests.visible_to(w.admin, pending_only=True) == []
    assert w.svc.get(approved.emergency_id).building == "lincoln-hs"


def test_trigger_receipts_refuse_replays(store_backend):
    store = store_backend.open()
    now = datetime(2025, 3, 1, tzinfo=UTC)
    assert store.remember_receipt("panic:office", "evt-1", now)
    assert not store.remember_receipt("panic:office", "evt-1", now)
    assert store.remember_receipt("panic:gym", "evt-1", now)
    with store.transaction():  # a replay inside a transaction leaves the transaction usable
        assert not store.remember_receipt("panic:office", "evt-1", now)
        assert store.remember_receipt("panic:office", "evt-2", now)
    assert not store.remember_receipt("panic:office", "evt-2", now)


# the audit log


def _filled_log(backend, n=10):
    clock = FakeClock(datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
    store = backend.open()
    audit = AuditLog(store, clock, "node-a")
    for i in range(1, n + 1):
        audit.append(
            "view.denied",
            actor_id="officer",
            object=f"camera:c{i}",
            outcome="denied",
            source="10.0.0.1",
            reason="no_live_grant",
            details={
                "n": i,
                "big": 1e20,
                "tiny": 1e-7,
                "nested": {"b": [1, 2.5], "a": None},
                "text": "Straße ✓ \u2028",
                "when": datetime(2025, 1, 1, tzinfo=UTC),
            },
        )
        clock.advance(0.5)
    return audit


def test_audit_chain_verifies_and_reads_back_exactly(store_backend):
    audit = _filled_log(store_backend)
    result = audit.verify()
    assert result.ok and result.checked == 10
    first = audit.entries(limit=1)[0]
    assert first.ts == "2025-03-01T12:00:00.123Z"
    assert first.details["big"] == 1e20 and isinstance(first.details["big"], float)
    assert [e.seq for e in audit.entries(after_seq=8, limit=2)] == [9, 10]
    reopened = AuditLog(store_backend.open(), FakeClock(), "node-b")
    assert reopened.entries(limit=100) == audit.entries(limit=100)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET reason = 'granted' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
    ],
)
def test_triggers_refuse_update_and_delete(store_backend, sql):
    audit = _filled_log(store_backend)
    with pytest.raises(store_backend.errors, match="append-only"):
        store_backend.execute(sql)
    assert audit.verify().ok and audit.verify().checked == 10


def test_truncate_is_refused_on_postgres(postgres_backend):
    audit = _filled_log(postgres_backend)
    with pytest.raises(postgres_backend.errors, match="append-only"):
        postgres_backend.execute("TRUNCATE audit_log")
    assert audit.verify().checked == 10


@pytest.mark.parametrize(
    "tampering, first_bad",
    [
        (["UPDATE audit_log SET reason = 'granted' WHERE seq = 3"], 3),
        (["UPDATE audit_log SET details = '{\"n\": 99}' WHERE seq = 4"], 4),
        (["DELETE FROM audit_log WHERE seq = 5"], 5),
        (["DELETE FROM audit_log WHERE seq = 10"], None),  # a cut tail is the checkpoints' job
        (["UPDATE audit_log SET prev_hash = hash WHERE seq = 7"], 7),
    ],
)
def test_verify_fails_after_tampering_with_the_triggers_dropped(store_backend, tampering, first_bad):
    audit = _filled_log(store_backend)
    store_backend.drop_audit_triggers()
    for sql in tampering:
        store_backend.execute(sql)
    result = audit.verify()
    if first_bad is None:
        assert result.ok and result.checked == 9
    else:
        assert not result.ok and result.first_bad_seq == first_bad, result


def test_reopening_restores_dropped_triggers(store_backend):
    _filled_log(store_backend)
    store_backend.drop_audit_triggers()
    store_backend.open().close()
    with pytest.raises(store_backend.errors, match="append-only"):
        store_backend.execute("DELETE FROM audit_log")


def test_concurrent_appends_from_threads_keep_one_chain(store_backend):
    audit = _filled_log(store_backend)

    def burst():
        for _ in range(25):
            audit.append("view.denied", actor_id="officer", object="camera:x", outcome="denied")

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = audit.verify()
    assert result.ok and result.checked == 110


def test_concurrent_appends_from_two_nodes_keep_one_chain(store_backend):
    """Two stores on one database (two gateway nodes, or two connections): writers are
    serialised, so neither reads a stale last entry."""
    clock = FakeClock()
    logs = [AuditLog(store_backend.open(), clock, f"node-{i}") for i in range(2)]
    failures: list[BaseException] = []

    def burst(log):
        try:
            for _ in range(40):
                log.append("view.denied", actor_id="officer", object="camera:x", outcome="denied")
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=burst, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    result = logs[0].verify()
    assert result.ok and result.checked == 80
    assert {e.node for e in logs[1].entries(limit=100)} == {"node-0", "node-1"}


# transactions and the outbox


def test_outbox_enqueue_rolls_back_with_the_transaction(store_backend):
    store = store_backend.open()
    outbox = Outbox(store, FakeClock(), subscribers, jitter=0.0)
    with pytest.raises(Boom), store.transaction():
        outbox.enqueue("emergency.activated", PAYLOAD)
        assert outbox.pending_count() == 2  # visible inside the transaction
        raise Boom
    assert outbox.pending_count() == 0 and outbox.due() == []
    rows = outbox.enqueue("emergency.activated", PAYLOAD)
    assert outbox.due() == rows and rows[0].payload["emergency"]["action"] == "LOCKDOWN"


def test_failed_command_leaves_no_notification(store_backend):
    w = world(store_backend)
    e = active(w)
    pending = w.outbox.pending_count()
    with pytest.raises(Conflict):
        w.svc.declare(w.admin, building="lincoln-hs", action=Action.SECURE, incident_type=IncidentType.OTHER)
    assert w.outbox.pending_count() == pending
    assert w.svc.get(e.id).state is State.ACTIVE


def test_nested_transactions_roll_back_only_the_inner_part(store_backend):
    store = store_backend.open()
    clock = FakeClock()
    outbox = Outbox(store, clock, lambda topic: ["cad"], jitter=0.0)
    with store.transaction():
        kept = outbox.enqueue("emergency.activated", PAYLOAD)
        with pytest.raises(Boom), store.transaction():
            outbox.enqueue("emergency.extended", PAYLOAD)
            raise Boom
        with store.transaction():
            also = outbox.enqueue("emergency.all_clear", PAYLOAD)
    assert outbox.pending_count() == 2
    assert [n.id for n in store.list_notifications("pending")] == [also[0].id, kept[0].id]


def test_a_failed_statement_inside_a_transaction_does_not_poison_it(store_backend):
    """SQLite carries on after a failed statement; PostgreSQL would abort the whole
    transaction unless the store confines the failure to a savepoint."""
    w = world(store_backend)
    e = active(w)
    with w.store.transaction():
        with pytest.raises(Conflict):
            w.store.insert_emergency(replace(e, id="dup"))
        w.audit.append("test.after_conflict", actor_id="system", object="x")
    assert w.audit.entries(limit=10_000)[-1].event_type == "test.after_conflict"
    assert w.audit.verify().ok


def test_outbox_delivery_order_backoff_and_dead_rows(store_backend):
    store = store_backend.open()
    clock = FakeClock()
    outbox = Outbox(store, clock, lambda topic: ["cad"], jitter=0.0, max_attempts=2)
    [first] = outbox.enqueue("emergency.activated", PAYLOAD)
    [second] = outbox.enqueue("emergency.all_clear", PAYLOAD)
    assert outbox.due() == [first]
    failed = outbox.failed(first.id, "HTTP 500")
    assert outbox.get(first.id) == failed and outbox.due() == []
    clock.advance(60)
    outbox.failed(first.id, "HTTP 500")
    assert outbox.dead_count() == 1 and outbox.dead()[0].id == first.id
    assert outbox.due() == [second]
    outbox.delivered(second.id)
    delivered = outbox.get(second.id)
    assert delivered.delivered_at == clock.now() and delivered.attempts == 1
    assert store.count_notifications("delivered") == 1 and outbox.pending_count() == 0


def test_entities_read_back_equal(store_backend):
    """Every field survives the round trip, times as aware UTC datetimes."""
    w = world(store_backend)
    e = active(w)
    ext = PendingExtension(90, "still searching", "admin", datetime(2025, 3, 1, 9, 30, 0, 1, tzinfo=UTC))
    e2 = replace(e, pending_extension=ext, extensions=2, threat_basis="änderung \"quoted\" 'x'")
    w.store.update_emergency(e2)
    got = w.store.get_emergency(e.id)
    assert got == e2 and got.declared_at.utcoffset() == timedelta(0)
    [grant] = w.store.grants_of_emergency(e.id)
    assert w.store.get_grant(grant.id) == grant and w.store.unended_grants(agency="village-pd") == [grant]
    assert w.store.unended_grants(agency="county-sheriff") == []
    with pytest.raises(KeyError):
        w.store.update_emergency(replace(e, id="missing"))
    with pytest.raises(KeyError):
        w.store.update_grant(replace(grant, id="missing"))
