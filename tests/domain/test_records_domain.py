"""Record links and their effects, on the domain alone (FakeClock, no servers)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import Invalid
from emergency.model import Actor, State
from emergency.records import RecordKind, RecordsService
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site
from emergency.sqlite_store import SqliteStore

SITE = load_site(sample_site_data())


@pytest.fixture
def world(tmp_path):
    clock = FakeClock()
    store = SqliteStore(tmp_path / "r.db")
    audit = AuditLog(store, clock, "t")
    svc = EmergencyService(SITE, store, audit, clock)
    events: list[object] = []
    records = RecordsService(SITE, store, audit, clock, svc, listeners=[events.append])
    svc.held_cameras = records.held_cameras
    actors = {a.id: Actor.from_account(a, mfa=True) for a in SITE.accounts.values()}
    yield clock, store, svc, records, actors, events
    store.close()


def test_imminent_threat_posted_three_times_makes_one_proposal(world):
    clock, store, svc, records, actors, _ = world
    for _ in range(3):
        link = records.upsert_threat(
            "records",
            source="tat",
            external_id="case-7",
            building="lincoln-hs",
            classification="imminent",
            status="open",
            basis="Student posted a threat",
        )
        clock.advance(1)
    proposals = svc.list()
    assert len(proposals) == 1 and link.emergency_id == proposals[0].id
    proposal = proposals[0]
    assert proposal.state is State.PENDING and proposal.threat_basis == "Student posted a threat"
    assert proposal.trigger == "records" and proposal.activation == "confirm"
    clock.advance(60)  # records proposals wait for a person: no self-activation
    assert svc.get(proposal.id).state is State.PENDING
    assert svc.confirm(actors["admin"], proposal.id).state is State.ACTIVE


def test_low_threat_and_unknown_level_propose_nothing(world):
    _, _, svc, records, _, _ = world
    records.upsert_threat(
        "records",
        source="tat",
        external_id="c1",
        building="lincoln-hs",
        classification="low",
        status="open",
        basis=None,
    )
    with pytest.raises(Invalid):
        records.upsert_threat(
            "records",
            source="tat",
            external_id="c2",
            building="lincoln-hs",
            classification="severe",
            status="open",
            basis=None,
        )
    assert svc.list() == []


def test_restraint_holds_covering_cameras_until_it_ends(world):
    clock, _, svc, records, actors, events = world
    e = svc.declare(actors["admin"], building="lincoln-hs", action="LOCKDOWN", incident_type="other")
    svc.confirm(actors["admin"], e.id)
    officer = actors["officer"]
    assert svc.decide_view(officer, "hs-hall-a").allowed
    start = clock.now()
    records.upsert_restraint(
        "records",
        source="sis",
        external_id="ep-1",
        episode_type="physical_restraint",
        building="lincoln-hs",
        location="hallways",
        start=start,
        end=None,
    )
    assert svc.decide_view(officer, "hs-hall-a").reason == "privacy_hold"
    assert "hs-hall-a" not in {c.id for c in svc.visible_cameras(officer)}
    assert all("hs-hall-a" not in g.camera_ids for g in svc.grants_for(officer))
    assert events[-1].held == {"hs-hall-a"}
    clock.advance(600)
    records.upsert_restraint(
        "records",
        source="sis",
        external_id="ep-1",
        episode_type="physical_restraint",
        building="lincoln-hs",
        location="hallways",
        start=start,
        end=clock.now(),
    )
    assert svc.decide_view(officer, "hs-hall-a").allowed
    assert events[-1].released == {"hs-hall-a"}
    link = records.links(RecordKind.RESTRAINT)[0]
    assert set(link.fields) == {"type", "location", "start", "end", "open"}


def test_a_hold_left_open_too_long_is_released_and_flagged(world):
    clock, store, svc, records, actors, _ = world
    records.upsert_restraint(
        "records",
        source="sis",
        external_id="ep-2",
        episode_type="time_out",
        building="lincoln-hs",
        location="gym",
        start=clock.now(),
        end=None,
    )
    assert records.held_cameras() == {"hs-gym"}
    clock.advance(timedelta(minutes=SITE.policy.privacy_hold_max_minutes).total_seconds())
    records.refresh_holds()
    assert records.held_cameras() == frozenset()
    assert records.links(RecordKind.RESTRAINT)[0].review
    assert any(e.event_type == "privacy_hold.review" for e in store.audit_entries(limit=1000))


def test_firearm_report_proposes_and_keeps_no_reporter(world):
    _, _, svc, records, _, _ = world
    link = records.upsert_report(
        "records",
        source="incidents",
        external_id="r-9",
        kind="firearm_observed",
        building="washington-ms",
        occurred_at=svc._clock.now(),
    )
    assert svc.get(link.emergency_id).action == "LOCKDOWN"
    assert set(link.fields) == {"kind", "occurred_at"}
