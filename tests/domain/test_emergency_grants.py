"""Grants: what an activation shares, how grants end, who may view, and restarts."""

from types import SimpleNamespace

import pytest

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import NotFound
from emergency.events import GrantEnded, GrantStarted
from emergency.model import Action, Actor, IncidentType, State
from emergency.sample import sample_site_data
from emergency.service import EmergencyService
from emergency.site import load_site
from emergency.sqlite_store import SqliteStore

HS_NORMAL = {"hs-parking", "hs-front", "hs-hall-a", "hs-gym", "hs-office"}


def world(tmp_path, clock=None, **policy):
    data = sample_site_data()
    data["policy"].update(policy)
    site = load_site(data)
    clock = clock or FakeClock()
    store = SqliteStore(tmp_path / "sightline.db")
    audit = AuditLog(store, clock, "test-node")
    events: list[object] = []
    svc = EmergencyService(site, store, audit, clock, [events.append])
    actors = {a.replace("-", "_"): Actor.from_account(acc, mfa=True) for a, acc in site.accounts.items()}
    return SimpleNamespace(site=site, clock=clock, store=store, audit=audit, svc=svc, events=events, **actors)


def active(w, action=Action.LOCKDOWN, building="lincoln-hs", **kw):
    e = w.svc.declare(w.admin, building=building, action=action, incident_type=IncidentType.ARMED_INTRUDER, **kw)
    return w.svc.confirm(w.admin, e.id)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_lockdown_shares_normal_cameras_of_the_building_with_agreement_agencies(tmp_path):
    w = world(tmp_path)
    e = active(w)
    [grant] = w.svc.grants_for(w.officer)
    assert grant.emergency_id == e.id and grant.agency == "village-pd"
    assert grant.camera_ids == HS_NORMAL
    assert (grant.starts, grant.expires) == (e.activated_at, e.expires_at)
    assert w.svc.grants_for(w.outsider) == []
    assert [g.grant for g in of(w.events, GrantStarted)] == [grant]


def test_secure_shares_exterior_and_entrances_only(tmp_path):
    w = world(tmp_path)
    active(w, Action.SECURE)
    [grant] = w.svc.grants_for(w.officer)
    assert grant.camera_ids == {"hs-parking", "hs-front"}


@pytest.mark.parametrize("action", [Action.HOLD, Action.SHELTER])
def test_hold_and_shelter_share_nothing_and_make_no_grant(tmp_path, action):
    w = world(tmp_path)
    e = active(w, action)
    assert e.state is State.ACTIVE
    assert w.svc.grants_for(w.officer) == [] and w.store.grants_of_emergency(e.id) == []


def test_timebox_is_never_beyond_the_hard_maximum(tmp_path):
    w = world(tmp_path, default_timebox_minutes=30, hard_max_minutes=30)
    e = active(w)
    assert (e.expires_at - e.activated_at).total_seconds() == 30 * 60


def test_other_buildings_cameras_are_never_granted(tmp_path):
    w = world(tmp_path)
    active(w, building="washington-ms")
    [grant] = w.svc.grants_for(w.officer)
    assert grant.camera_ids == {"ms-front", "ms-hall"}
    assert not w.svc.decide_view(w.officer, "hs-front").allowed


@pytest.mark.parametrize("end", ["all_clear", "cancel"])
def test_all_clear_and_cancel_end_grants_and_tell_listeners(tmp_path, end):
    w = world(tmp_path)
    e = active(w)
    [grant] = w.svc.grants_for(w.officer)
    w.clock.advance(120)
    seen_during_emit = []
    w.svc.add_listener(lambda ev: seen_during_emit.append(w.svc.grant_live(grant.id)))
    getattr(w.svc, end)(w.admin, e.id)
    reason = {"all_clear": "all_clear", "cancel": "cancelled"}[end]
    [ended] = of(w.events, GrantEnded)
    assert ended.reason == reason and ended.grant.id == grant.id
    assert ended.grant.ended_at == w.clock.now() and ended.grant.end_reason == reason
    assert seen_during_emit and not any(seen_during_emit)
    assert not w.svc.grant_live(grant.id)
    assert w.svc.grants_for(w.officer) == []
    assert not w.svc.decide_view(w.officer, "hs-front").allowed
    entry = next(x for x in w.audit.entries() if x.event_type == "grant.ended")
    assert entry.object == f"grant:{grant.id}" and entry.reason == reason


def test_expiry_ends_sharing_but_not_the_emergency(tmp_path):
    w = world(tmp_path)
    e = active(w)
    [grant] = w.svc.grants_for(w.officer)
    w.clock.advance(60 * 60 - 1)
    w.svc.tick()
    assert w.svc.grant_live(grant.id) and of(w.events, GrantEnded) == []
    w.clock.advance(1)
    w.svc.tick()
    w.svc.tick()
    [ended] = of(w.events, GrantEnded)
    assert ended.reason == "expired" and ended.grant.ended_at == e.expires_at
    assert w.svc.get(e.id).state is State.ACTIVE
    assert not w.svc.get(e.id).sharing_at(w.clock.now())
    assert w.svc.decide_view(w.officer, "hs-front").reason == "no_live_grant"
    w.svc.all_clear(w.admin, e.id)
    assert len(of(w.events, GrantEnded)) == 1


def test_reads_never_show_an_expired_grant(tmp_path):
    w = world(tmp_path)
    active(w)
    [grant] = w.svc.grants_for(w.officer)
    w.clock.advance(2 * 3600)
    assert grant.live_at(w.clock.now()) is False
    assert w.svc.grants_for(w.officer) == []


def test_decide_view_rules(tmp_path):
    w = world(tmp_path)
    assert w.svc.decide_view(w.officer, "hs-front").reason == "no_live_grant"
    active(w)
    allowed = w.svc.decide_view(w.officer, "hs-front")
    assert allowed.allowed and allowed.reason == "granted" and allowed.grant.agency == "village-pd"
    no_mfa = Actor("officer", w.officer.role, "village-pd", (), mfa=False)
    cases = {
        (no_mfa, "hs-front"): "mfa_required",
        (w.outsider, "hs-front"): "no_agreement",
        (w.dispatcher, "hs-front"): "role_not_permitted",
        (w.admin, "hs-front"): "role_not_permitted",
        (w.officer, "hs-nurse"): "privacy_sensitive",
        (w.officer, "hs-restroom-hall"): "privacy_never",
        (w.officer, "ms-front"): "no_live_grant",
    }
    before = len(w.audit.entries())
    for (actor, camera), reason in cases.items():
        d = w.svc.decide_view(actor, camera, source="10.0.0.7")
        assert (d.allowed, d.reason, d.grant) == (False, reason, None)
    denied = w.audit.entries(after_seq=before)
    assert [(x.event_type, x.outcome, x.reason, x.object) for x in denied] == [
        ("view.denied", "denied", reason, f"camera:{camera}") for (_, camera), reason in cases.items()
    ]
    assert all(x.source == "10.0.0.7" for x in denied)
    with pytest.raises(NotFound):
        w.svc.decide_view(w.officer, "no-such-camera")
    assert w.audit.entries()[-1].event_type == "view.denied"


def test_visible_cameras_by_role(tmp_path):
    w = world(tmp_path)
    everything = set(w.site.cameras)
    hs = {c for c in everything if c.startswith("hs-")}
    ids = lambda actor: {c.id for c in w.svc.visible_cameras(actor)}  # noqa: E731
    assert ids(w.admin) == everything and ids(w.auditor) == everything
    assert ids(w.principal) == hs
    assert ids(w.officer) == set() and ids(w.dispatcher) == set()
    active(w)
    assert ids(w.officer) == HS_NORMAL
    assert ids(w.outsider) == set() and ids(w.dispatcher) == set()


def test_restart_keeps_grants_and_applies_expiries_passed_while_down(tmp_path):
    clock = FakeClock()
    w = world(tmp_path, clock=clock)
    e = active(w)
    [grant] = w.svc.grants_for(w.officer)
    w.store.close()

    clock.advance(60)
    again = world(tmp_path, clock=clock)
    assert again.svc.get(e.id) == e
    assert again.svc.grants_for(again.officer) == [grant]
    assert again.svc.decide_view(again.officer, "hs-front").allowed
    again.store.close()

    clock.advance(3 * 3600)
    events: list[object] = []
    store = SqliteStore(tmp_path / "sightline.db")
    svc = EmergencyService(again.site, store, AuditLog(store, clock, "n2"), clock, [events.append])
    [ended] = of(events, GrantEnded)
    assert ended.grant.id == grant.id and ended.reason == "expired"
    assert not svc.grant_live(grant.id)
    assert AuditLog(store, clock, "n2").verify().ok


def test_restart_applies_a_confirm_window_that_passed_while_down(tmp_path):
    clock = FakeClock()
    w = world(tmp_path, clock=clock)
    e = w.svc.declare(w.principal, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.FIRE)
    w.store.close()
    clock.advance(30)
    again = world(tmp_path, clock=clock)
    now_active = again.svc.get(e.id)
    assert now_active.state is State.ACTIVE and now_active.activated_at == e.confirm_deadline
    assert [g.grant.starts for g in of(again.events, GrantStarted)] == [e.confirm_deadline]
