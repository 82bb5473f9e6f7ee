"""The emergency state machine through EmergencyService: transitions, refusals, time."""

from types import SimpleNamespace

import pytest

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound
from emergency.events import EmergencyChanged
from emergency.model import Action, Actor, IncidentType, State
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site
from emergency.sqlite_store import SqliteStore


def world(tmp_path, **policy):
    data = sample_site_data()
    data["policy"].update(policy)
    site = load_site(data)
    clock = FakeClock()
    store = SqliteStore(tmp_path / "sightline.db")
    audit = AuditLog(store, clock, "test-node")
    events: list[object] = []
    svc = EmergencyService(site, store, audit, clock, [events.append])
    actors = {a.replace("-", "_"): Actor.from_account(acc, mfa=True) for a, acc in site.accounts.items()}
    return SimpleNamespace(site=site, clock=clock, store=store, audit=audit, svc=svc, events=events, **actors)


def declare(w, actor=None, building="lincoln-hs", action=Action.LOCKDOWN, **kw):
    return w.svc.declare(
        actor or w.principal, building=building, action=action, incident_type=IncidentType.ARMED_INTRUDER, **kw
    )


def event_types(w):
    return [e.event_type for e in w.audit.entries()]


def test_declare_is_pending_with_a_confirm_window(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    assert e.state is State.PENDING
    assert e.declared_by == "principal" and e.declared_at == w.clock.now()
    assert (e.confirm_deadline - e.declared_at).total_seconds() == 10
    assert e.threat_basis is None and e.activated_at is None
    assert w.svc.get(e.id) == e
    assert w.events == [EmergencyChanged(e)]
    assert event_types(w) == ["emergency.declared"]
    assert w.audit.entries()[0].details["threat_basis_missing"] is True


def test_confirm_activates_now_and_starts_the_time_box(tmp_path):
    w = world(tmp_path)
    e = declare(w, threat_basis="  caller reports a person with a gun  ")
    w.clock.advance(3)
    active = w.svc.confirm(w.admin, e.id)
    assert active.state is State.ACTIVE and active.threat_basis == "caller reports a person with a gun"
    assert active.activated_at == w.clock.now()
    assert (active.expires_at - active.activated_at).total_seconds() == 60 * 60
    assert event_types(w)[:3] == ["emergency.declared", "emergency.confirmed", "emergency.activated"]


def test_pending_activates_itself_at_the_deadline(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    w.clock.advance(9.999)
    w.svc.tick()
    assert w.svc.get(e.id).state is State.PENDING
    w.clock.advance(30)
    w.svc.tick()
    active = w.svc.get(e.id)
    assert active.state is State.ACTIVE
    assert active.activated_at == e.confirm_deadline
    activated = [x for x in w.audit.entries() if x.event_type == "emergency.activated"]
    assert len(activated) == 1 and activated[0].actor_id == "system"
    w.svc.tick()
    assert len([x for x in w.audit.entries() if x.event_type == "emergency.activated"]) == 1


def test_explicit_confirm_policy_keeps_it_pending(tmp_path):
    w = world(tmp_path, require_explicit_confirm=True)
    e = declare(w)
    w.clock.advance(3600)
    assert w.svc.get(e.id).state is State.PENDING
    assert w.svc.confirm(w.principal, e.id).state is State.ACTIVE


def test_cancel_is_one_action_from_pending_or_active(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    cancelled = w.svc.cancel(w.principal, e.id)
    assert cancelled.state is State.CANCELLED and cancelled.end_reason == "false alarm"
    assert cancelled.ended_at == w.clock.now()
    e2 = declare(w)
    w.svc.confirm(w.principal, e2.id)
    assert w.svc.cancel(w.principal, e2.id, reason="drill ended early").end_reason == "drill ended early"


def test_all_clear_then_close(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    w.svc.confirm(w.principal, e.id)
    w.clock.advance(600)
    cleared = w.svc.all_clear(w.principal, e.id)
    assert cleared.state is State.ALL_CLEAR and cleared.ended_at == w.clock.now()
    assert w.svc.close(w.principal, e.id).state is State.CLOSED
    assert w.svc.list(open_only=True) == []
    assert [x.id for x in w.svc.list()] == [e.id]


@pytest.mark.parametrize(
    ("path", "command"),
    [
        ([], "all_clear"),
        ([], "close"),
        (["cancel"], "confirm"),
        (["cancel"], "cancel"),
        (["cancel"], "all_clear"),
        (["confirm"], "confirm"),
        (["confirm"], "close"),
        (["confirm", "all_clear"], "cancel"),
        (["confirm", "all_clear"], "all_clear"),
        (["confirm", "all_clear", "close"], "close"),
        (["confirm", "all_clear", "close"], "confirm"),
    ],
)
def test_everything_else_is_an_invalid_transition(tmp_path, path, command):
    w = world(tmp_path)
    e = declare(w)
    for step in path:
        getattr(w.svc, step)(w.principal, e.id)
    before = w.svc.get(e.id)
    with pytest.raises(InvalidTransition):
        getattr(w.svc, command)(w.principal, e.id)
    assert w.svc.get(e.id) == before
    last = w.audit.entries()[-1]
    assert (last.event_type, last.outcome) == (f"{command}.denied", "denied")
    assert last.reason.startswith("invalid_transition")


def test_confirm_after_the_window_is_too_late(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    w.clock.advance(11)
    with pytest.raises(InvalidTransition):
        w.svc.confirm(w.principal, e.id)


@pytest.mark.parametrize("who", ["dispatcher", "officer", "auditor"])
def test_only_admins_declare(tmp_path, who):
    w = world(tmp_path)
    actor = getattr(w, who)
    with pytest.raises(Forbidden):
        declare(w, actor)
    entry = w.audit.entries()[-1]
    assert (entry.event_type, entry.outcome, entry.actor_id) == ("declare.denied", "denied", actor.id)
    assert entry.object == "building:lincoln-hs" and entry.reason.startswith("forbidden")
    assert w.svc.list() == []


def test_building_admin_only_for_their_buildings(tmp_path):
    w = world(tmp_path)
    with pytest.raises(Forbidden):
        declare(w, w.principal, building="washington-ms")
    e = declare(w, w.admin, building="washington-ms")
    with pytest.raises(Forbidden):
        w.svc.cancel(w.principal, e.id)
    assert w.svc.cancel(w.admin, e.id).state is State.CANCELLED


def test_one_open_emergency_per_building(tmp_path):
    w = world(tmp_path)
    e = declare(w)
    with pytest.raises(Conflict):
        declare(w, w.admin)
    w.svc.confirm(w.principal, e.id)
    with pytest.raises(Conflict):
        declare(w, w.admin, action=Action.SECURE)
    declare(w, w.admin, building="washington-ms")
    w.svc.all_clear(w.principal, e.id)
    assert declare(w).state is State.PENDING


def test_bad_input_is_invalid_or_not_found(tmp_path):
    w = world(tmp_path)
    with pytest.raises(Invalid):
        declare(w, building="atlantis")
    with pytest.raises(Invalid):
        declare(w, action="PANIC")
    with pytest.raises(Invalid):
        declare(w, threat_basis="x" * 5000)
    with pytest.raises(NotFound):
        w.svc.get("nope")
    with pytest.raises(NotFound):
        w.svc.confirm(w.principal, "nope")
    e = declare(w)
    with pytest.raises(Invalid):
        w.svc.cancel(w.principal, e.id, reason="   ")
    assert all(x.outcome == "denied" for x in w.audit.entries() if x.event_type.endswith(".denied"))
    assert w.audit.verify().ok


def test_drill_records_are_marked(tmp_path):
    w = world(tmp_path)
    e = declare(w, drill=True)
    w.svc.confirm(w.principal, e.id)
    w.svc.all_clear(w.principal, e.id)
    entries = w.audit.entries()
    assert {x.event_type for x in entries} >= {"emergency.declared", "grant.started", "grant.ended"}
    assert all(x.details["drill"] is True for x in entries)


def test_listener_failure_does_not_undo_the_change(tmp_path):
    w = world(tmp_path)

    def broken(event):
        raise RuntimeError("bus down")

    w.svc.add_listener(broken)
    e = declare(w)
    assert w.svc.get(e.id).state is State.PENDING
    assert "listener.failed" in event_types(w)
    assert w.audit.verify().ok
