"""The domain on the repository protocols alone: EmergencyService, AccessRequests and
RecordsService run on tests/memory_store.py (no SQLite, no servers, FakeClock)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emergency.audit import GENESIS_HASH, AuditLog
from emergency.audit.checkpoints import CheckpointSigner
from emergency.clock import FakeClock
from emergency.errors import Conflict
from emergency.events import GrantEnded, GrantStarted
from emergency.model import Action, Actor, IncidentType, State, Trigger
from emergency.outbox import Outbox
from emergency.receipts import Receipts
from emergency.records import PrivacyHoldChanged, RecordsService
from emergency.requests import AccessRequests, RequestState
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site
from tests.memory_store import MemoryStore

HS_LOCKDOWN = {"hs-parking", "hs-front", "hs-hall-a", "hs-gym", "hs-office"}


@pytest.fixture
def w() -> SimpleNamespace:
    site = load_site(sample_site_data())
    clock = FakeClock()
    store = MemoryStore()
    signer = CheckpointSigner(Ed25519PrivateKey.generate(), "memory-node")
    audit = AuditLog(store, clock, "memory-node", signer=signer, checkpoint_every=5)
    outbox = Outbox(store, clock, lambda topic: ["dispatch"])
    events: list[object] = []
    svc = EmergencyService(site, store, audit, clock, [events.append], outbox=outbox)
    requests = AccessRequests(site, store, audit, clock, svc)
    records = RecordsService(site, store, audit, clock, svc, listeners=[events.append])
    svc.held_cameras = records.held_cameras
    actors = {a.replace("-", "_"): Actor.from_account(acc, mfa=True) for a, acc in site.accounts.items()}
    return SimpleNamespace(
        site=site,
        clock=clock,
        store=store,
        audit=audit,
        outbox=outbox,
        svc=svc,
        requests=requests,
        records=records,
        events=events,
        who=SimpleNamespace(**actors),
    )


def test_declare_confirm_and_end_an_emergency_on_the_memory_store(w: SimpleNamespace) -> None:
    e = w.svc.declare(
        w.who.admin,
        building="lincoln-hs",
        action=Action.LOCKDOWN,
        incident_type=IncidentType.ARMED_INTRUDER,
        threat_basis="armed person at the front door",
    )
    assert e.state is State.PENDING and w.svc.grants_for(w.who.officer) == []
    e = w.svc.confirm(w.who.admin, e.id)
    assert e.state is State.ACTIVE
    [grant] = w.svc.grants_for(w.who.officer)
    assert grant.camera_ids == HS_LOCKDOWN and grant.expires == e.expires_at
    assert w.svc.decide_view(w.who.officer, "hs-front").allowed
    assert not w.svc.decide_view(w.who.officer, "ms-front").allowed
    assert w.svc.stored_grant(grant.id) == grant and w.svc.grants_of(e.id) == [grant]

    ended = w.svc.all_clear(w.who.admin, e.id)
    assert ended.state is State.ALL_CLEAR and w.svc.grants_for(w.who.officer) == []
    assert w.svc.stored_grant(grant.id).end_reason == "all_clear"
    assert [type(x) for x in w.events if isinstance(x, GrantStarted | GrantEnded)] == [GrantStarted, GrantEnded]
    assert [n.topic for n in w.outbox.due()] == ["emergency.activated"]  # one per subscriber, in order
    assert w.outbox.count("pending") == 2


def test_the_confirm_window_and_the_time_box_run_on_the_injected_clock(w: SimpleNamespace) -> None:
    e = w.svc.declare(w.who.admin, building="lincoln-hs", action=Action.SECURE, incident_type=IncidentType.OTHER)
    w.clock.advance(w.site.policy.confirm_window_seconds)
    assert w.svc.get(e.id).state is State.ACTIVE
    [grant] = w.svc.grants_for(w.who.officer)
    w.clock.advance((grant.expires - w.clock.now()).total_seconds())
    assert w.svc.grants_for(w.who.officer) == []
    assert w.svc.stored_grant(grant.id).end_reason == "expired"


def test_a_refused_command_rolls_back_and_is_audited(w: SimpleNamespace) -> None:
    w.svc.declare(w.who.admin, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.OTHER)
    with pytest.raises(Conflict):
        w.svc.declare(w.who.admin, building="lincoln-hs", action=Action.HOLD, incident_type=IncidentType.OTHER)
    assert len(w.svc.list()) == 1
    assert [x.event_type for x in w.audit.latest("declare.denied")] == ["declare.denied"]


def test_an_approved_dispatcher_request_activates_at_once(w: SimpleNamespace) -> None:
    request = w.requests.submit(
        w.who.dispatcher, building="lincoln-hs", call_type="shots fired", reason="caller reports shots in the gym"
    )
    assert request.state is RequestState.PENDING
    assert w.requests.visible_to(w.who.admin, pending_only=True) == [request]
    approved = w.requests.approve(w.who.admin, request.id)
    assert approved.state is RequestState.APPROVED
    e = w.svc.get(approved.emergency_id)
    assert e.state is State.ACTIVE and e.trigger is Trigger.DISPATCHER
    assert [g.camera_ids for g in w.svc.grants_for(w.who.officer)] == [HS_LOCKDOWN]


def test_a_restraint_episode_holds_its_cameras_until_it_ends(w: SimpleNamespace) -> None:
    e = w.svc.confirm(
        w.who.admin,
        w.svc.declare(w.who.admin, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.OTHER).id,
    )
    start = w.clock.now()
    w.records.upsert_restraint(
        "sis",
        source="sis",
        external_id="ep-1",
        episode_type="time_out",
        building="lincoln-hs",
        location="hallways",
        start=start,
        end=None,
    )
    assert w.records.held_cameras() == {"hs-hall-a"}
    assert w.svc.grants_for(w.who.officer)[0].camera_ids == HS_LOCKDOWN - {"hs-hall-a"}
    assert not w.svc.decide_view(w.who.officer, "hs-hall-a").allowed
    w.clock.advance(60)
    w.records.upsert_restraint(
        "sis",
        source="sis",
        external_id="ep-1",
        episode_type="time_out",
        building="lincoln-hs",
        location="hallways",
        start=start,
        end=w.clock.now(),
    )
    assert w.records.held_cameras() == frozenset()
    assert w.svc.grants_for(w.who.officer)[0].camera_ids == HS_LOCKDOWN
    link = w.records.get(w.records.links()[0].kind, "sis", "ep-1")
    assert link is not None and link.received == start and link.fields["open"] is False
    holds = [x for x in w.events if isinstance(x, PrivacyHoldChanged)]
    hall, none = frozenset({"hs-hall-a"}), frozenset[str]()
    assert [(h.held, h.released) for h in holds] == [(hall, none), (none, hall)]
    assert w.svc.get(e.id).state is State.ACTIVE


def test_a_receipt_is_accepted_once(w: SimpleNamespace) -> None:
    receipts = Receipts(w.store, w.clock)
    assert receipts.first_time("panic:office", "evt-1")
    assert not receipts.first_time("panic:office", "evt-1")
    assert receipts.first_time("panic:gym", "evt-1")


def test_the_audit_log_chains_signs_and_verifies_on_the_memory_store(w: SimpleNamespace) -> None:
    for _ in range(3):
        e = w.svc.declare(
            w.who.admin, building="washington-ms", action=Action.LOCKDOWN, incident_type=IncidentType.OTHER
        )
        w.svc.cancel(w.who.admin, e.id, reason="drill button pressed by mistake")
    w.audit.append("gateway.started", actor_id="system", object="node:memory-node")  # outside a transaction
    entries = w.audit.entries()
    assert [x.seq for x in entries] == list(range(1, len(entries) + 1)) and len(entries) >= 6
    prev = GENESIS_HASH
    for entry in entries:
        assert entry.prev_hash == prev and entry.computed_hash() == entry.hash
        prev = entry.hash
    result = w.audit.verify()
    assert result.ok and result.checked == len(entries) and result.checkpoints >= 1

    forged = replace(entries[2], reason="nothing happened")
    w.store._t.audit[2] = forged
    result = w.audit.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_the_domain_services_import_no_sqlite() -> None:
    code = (
        "import sys, emergency.service, emergency.requests, emergency.records, emergency.outbox, "
        "emergency.receipts, emergency.audit\n"
        "bad = sorted(m for m in sys.modules if m in ('sqlite3', 'emergency.sqlite_store', 'emergency.sql_store',"
        " 'emergency.pg_store', 'psycopg'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
