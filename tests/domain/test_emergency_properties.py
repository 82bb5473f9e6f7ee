"""Properties over random command sequences and clock moves, including restarts."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emergency.audit import AuditLog
from emergency.clock import FakeClock
from emergency.errors import DomainError
from emergency.model import Action, Actor, IncidentType, State
from emergency.sample import sample_site_data
from emergency.scope import shared_cameras
from emergency.service import EmergencyService
from emergency.site import PrivacyClass, load_site
from emergency.sqlite_store import SqliteStore

SITE_DATA = sample_site_data()
SITE_DATA["policy"].update(default_timebox_minutes=5, hard_max_minutes=10)
SITE = load_site(SITE_DATA)
ACTORS = [Actor.from_account(a, mfa=True) for a in SITE.accounts.values()]
ADMINS = [a for a in ACTORS if a.id in ("admin", "principal")]
actors = st.one_of(st.sampled_from(ADMINS), st.sampled_from(ADMINS), st.sampled_from(ACTORS))

ops = st.one_of(
    st.tuples(
        st.just("declare"),
        actors,
        st.sampled_from(sorted(SITE.buildings)),
        st.sampled_from(list(Action)),
        st.booleans(),
    ),
    st.tuples(st.sampled_from(["confirm", "confirm", "cancel", "all_clear", "close"]), actors, st.integers(0, 5)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 9.999, 10, 60, 299.999, 300]) | st.floats(0, 700)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("change"), actors, st.integers(0, 5), st.sampled_from(list(Action))),
    st.tuples(
        st.just("activate"),
        st.sampled_from(ADMINS),
        st.sampled_from(sorted(SITE.buildings)),
        st.sampled_from(list(Action)),
    ),
    st.tuples(st.just("extend"), actors, st.integers(0, 5), st.sampled_from([1, 3, 5, 8])),
    st.tuples(st.just("extend"), st.sampled_from(ADMINS), st.integers(0, 5), st.sampled_from([4, 8])),
    st.tuples(st.sampled_from(["approve", "deny"]), actors, st.integers(0, 5)),
    st.tuples(st.just("restart")),
)


def second_approvals(store: SqliteStore) -> set[str]:
    """Emergencies with a recorded extension approved by two different administrators."""
    return {
        e.details["emergency"]
        for e in store.audit_entries(limit=100_000)
        if e.event_type == "emergency.extended" and len(set(e.details["approved_by"])) == 2
    }


def check(store: SqliteStore, now) -> None:
    emergencies = {e.id: e for e in store.list_emergencies()}
    approved_twice = second_approvals(store)
    open_buildings = [e.building for e in emergencies.values() if e.state.is_open]
    assert len(open_buildings) == len(set(open_buildings))
    for e in emergencies.values():
        for g in store.grants_of_emergency(e.id):
            assert all(SITE.cameras[c].privacy is PrivacyClass.NORMAL for c in g.camera_ids)
            assert all(SITE.cameras[c].building == e.building for c in g.camera_ids)
            assert SITE.agencies[g.agency].agreement
            if g.live_at(now):
                assert e.state is State.ACTIVE and e.sharing_at(now)
                assert g.camera_ids <= shared_cameras(SITE, e.building, e.action), "outside the action's scope"
            if g.expires - e.activated_at > SITE.policy.hard_max:
                assert e.id in approved_twice, "past the hard maximum without a second approval"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=40))
def test_grants_stay_inside_active_emergencies_and_normal_cameras(steps):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.db"
        clock = FakeClock()
        store = SqliteStore(path)
        svc = EmergencyService(SITE, store, AuditLog(store, clock, "p"), clock)
        for step in steps:
            kind = step[0]
            try:
                if kind == "declare":
                    _, actor, building, action, drill = step
                    svc.declare(actor, building=building, action=action, incident_type=IncidentType.OTHER, drill=drill)
                elif kind == "activate":
                    _, actor, building, action = step
                    e = svc.declare(actor, building=building, action=action, incident_type=IncidentType.OTHER)
                    svc.confirm(actor, e.id)
                elif kind == "advance":
                    clock.advance(step[1])
                elif kind == "tick":
                    svc.tick()
                elif kind == "restart":
                    store.close()
                    store = SqliteStore(path)
                    svc = EmergencyService(SITE, store, AuditLog(store, clock, "p"), clock)
                else:
                    _, actor, index, *rest = step
                    known = store.list_emergencies()
                    target = known[index % len(known)].id if known else "missing"
                    if kind == "change":
                        svc.change_action(actor, target, rest[0])
                    elif kind == "extend":
                        svc.extend(actor, target, minutes=rest[0], reason="still needed")
                    elif kind in ("approve", "deny"):
                        svc.decide_extension(actor, target, approve=kind == "approve")
                    else:
                        getattr(svc, kind)(actor, target)
            except DomainError:
                pass
            check(store, clock.now())
        assert AuditLog(store, clock, "p").verify().ok
        store.close()
