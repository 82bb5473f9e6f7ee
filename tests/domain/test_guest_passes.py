"""Mutual-aid guest passes: single use, 15 minutes, limited PINs, bound to one emergency,
never wider than what the emergency shares, every step audited (emergency.guest_passes)."""

import pytest

from emergency.audit import AuditEvent
from emergency.errors import Forbidden, Invalid, InvalidTransition
from emergency.guest_passes import MAX_WRONG_PINS, GuestPasses, PassRefused, PassState, agency_id
from emergency.model import Action, Actor, IncidentType
from emergency.site import Role
from tests.domain.test_emergency_grants import HS_NORMAL, active, world

GUEST = {"name": "Dana Ortiz", "badge": "4471", "agency": "County Sheriff"}


def passes_world(tmp_path):
    w = world(tmp_path)
    w.passes = GuestPasses(w.store, w.audit, w.clock, w.svc, link_for=lambda s: f"https://sl.example/guest/{s}")
    w.e = active(w)
    return w


def guest_actor(p) -> Actor:
    return Actor(p.account_id, Role.OFFICER, p.agency_id, (), True)


def events(w, kind):
    return [e for e in w.audit.entries(limit=10_000) if e.event_type == kind]


def test_a_pass_works_once_and_the_guest_sees_exactly_the_emergencys_cameras(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.dispatcher, w.e.id)
    assert issued.link == f"https://sl.example/guest/{issued.link_secret}" and len(issued.pin) == 6
    stored = w.store.get_guest_pass(issued.guest_pass.id)
    assert issued.pin not in repr(stored) and issued.link_secret not in repr(stored)
    p = w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    assert p.state is PassState.REDEEMED and p.label == "mutual aid: County Sheriff"
    guest = guest_actor(p)
    [grant] = w.svc.grants_for(guest)
    assert grant.camera_ids == HS_NORMAL and grant.agency == agency_id(p.id)
    assert w.svc.decide_view(guest, "hs-front").allowed
    assert w.passes.in_force(p.id) == p
    with pytest.raises(PassRefused) as refused:
        w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    assert refused.value.reason == "already_used"
    [redeemed] = events(w, AuditEvent.GUEST_PASS_REDEEMED)
    assert redeemed.details["guest_name"] == "Dana Ortiz" and redeemed.details["badge"] == "4471"
    [again] = events(w, AuditEvent.GUEST_PASS_REFUSED)
    assert again.details["why"] == "already_used" and again.outcome == "denied"
    text = "".join(repr(e) for e in w.audit.entries(limit=10_000))
    assert issued.pin not in text and issued.link_secret not in text


def test_not_another_buildings_emergency(tmp_path):
    w = passes_world(tmp_path)
    other = active(w, building="washington-ms")
    issued = w.passes.issue(w.dispatcher, w.e.id)
    p = w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    guest = guest_actor(p)
    assert not w.svc.decide_view(guest, "ms-front").allowed
    assert {c.id for c in w.svc.visible_cameras(guest)} == HS_NORMAL
    assert all(g.emergency_id != other.id for g in w.svc.grants_for(guest))


def test_wrong_pins_kill_the_pass_after_the_limit(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    wrong = "000000" if issued.pin != "000000" else "111111"
    reasons = []
    for _ in range(MAX_WRONG_PINS):
        with pytest.raises(PassRefused) as refused:
            w.passes.redeem(issued.link_secret, wrong, **GUEST)
        reasons.append(refused.value.reason)
    assert reasons == ["wrong_pin"] * (MAX_WRONG_PINS - 1) + ["wrong_pin_limit"]
    with pytest.raises(PassRefused) as refused:  # the right PIN no longer helps
        w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    assert refused.value.reason == "too_many_wrong_pins"
    assert w.store.get_guest_pass(issued.guest_pass.id).state is PassState.DEAD
    assert len(events(w, AuditEvent.GUEST_PASS_REFUSED)) == MAX_WRONG_PINS + 1
    assert events(w, AuditEvent.GUEST_PASS_ENDED)[0].details["why"] == "too many wrong PINs"


def test_unused_pass_expires_after_15_minutes(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    w.clock.advance(15 * 60)
    with pytest.raises(PassRefused) as refused:
        w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    assert refused.value.reason == "expired"
    assert [e.details["pass"] for e in events(w, AuditEvent.GUEST_PASS_EXPIRED)] == [issued.guest_pass.id]


def test_just_before_15_minutes_it_still_works(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    w.clock.advance(15 * 60 - 1)
    assert w.passes.redeem(issued.link_secret, issued.pin, **GUEST).state is PassState.REDEEMED


@pytest.mark.parametrize("end", ["all_clear", "cancel"])
def test_the_pass_and_the_guests_access_die_with_the_emergency(tmp_path, end):
    w = passes_world(tmp_path)
    used = w.passes.issue(w.admin, w.e.id)
    unused = w.passes.issue(w.admin, w.e.id)
    p = w.passes.redeem(used.link_secret, used.pin, **GUEST)
    getattr(w.svc, end)(w.admin, w.e.id)
    assert w.passes.in_force(p.id) is None
    assert w.svc.grants_for(guest_actor(p)) == []
    with pytest.raises(PassRefused) as refused:
        w.passes.redeem(unused.link_secret, unused.pin, **GUEST)
    assert refused.value.reason == "ended"
    ended = {e.details["pass"] for e in events(w, AuditEvent.GUEST_PASS_ENDED)}
    assert ended == {p.id, unused.guest_pass.id}


def test_guest_follows_action_changes_and_never_sees_more_than_the_agencies(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    p = w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    guest = guest_actor(p)
    for action in (Action.SECURE, Action.HOLD, Action.LOCKDOWN, Action.EVACUATE):
        w.svc.change_action(w.admin, w.e.id, action)
        agencies = {c for g in w.svc.grants_for(w.officer) for c in g.camera_ids}
        mine = {c for g in w.svc.grants_for(guest) for c in g.camera_ids}
        assert mine == agencies, action
    w.svc.extend(w.admin, w.e.id, minutes=10, reason="still searching")
    [g_guest] = w.svc.grants_for(guest)
    [g_agency] = w.svc.grants_for(w.officer)
    assert g_guest.expires == g_agency.expires


def test_time_box_end_ends_the_guest_too(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    p = w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    w.clock.advance((w.e.expires_at - w.clock.now()).total_seconds())
    assert w.svc.grants_for(guest_actor(p)) == [] and w.passes.in_force(p.id) is None
    w.passes.tick()
    assert w.store.get_guest_pass(p.id).state is PassState.ENDED


def test_who_may_issue(tmp_path):
    w = passes_world(tmp_path)
    for who in (w.officer, w.auditor, w.outsider):
        with pytest.raises(Forbidden):
            w.passes.issue(who, w.e.id)
    other = active(w, building="washington-ms")
    principal_buildings = w.principal.buildings
    if "washington-ms" not in principal_buildings:
        with pytest.raises(Forbidden):
            w.passes.issue(w.principal, other.id)
    assert len(events(w, AuditEvent.GUEST_PASS_CREATE_DENIED)) >= 3


def test_only_for_an_active_emergency(tmp_path):
    w = world(tmp_path)
    passes = GuestPasses(w.store, w.audit, w.clock, w.svc)
    e = w.svc.declare(w.admin, building="lincoln-hs", action=Action.LOCKDOWN, incident_type=IncidentType.OTHER)
    with pytest.raises(InvalidTransition):
        passes.issue(w.admin, e.id)


def test_blank_fields_cost_no_try(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    for _ in range(MAX_WRONG_PINS + 1):
        with pytest.raises(Invalid):
            w.passes.redeem(issued.link_secret, "000000", **{**GUEST, "badge": "  "})
    assert w.passes.redeem(issued.link_secret, issued.pin, **GUEST).state is PassState.REDEEMED


def test_unknown_link_is_refused_and_audited(tmp_path):
    w = passes_world(tmp_path)
    with pytest.raises(PassRefused) as refused:
        w.passes.redeem("made-up", "123456", **GUEST)
    assert refused.value.reason == "unknown_link" and refused.value.status == 404
    assert events(w, AuditEvent.GUEST_PASS_REFUSED)[0].details["why"] == "unknown_link"


def test_ending_a_pass_ends_its_guests_grant(tmp_path):
    w = passes_world(tmp_path)
    issued = w.passes.issue(w.admin, w.e.id)
    p = w.passes.redeem(issued.link_secret, issued.pin, **GUEST)
    w.passes.end(w.dispatcher, p.id)
    assert w.svc.grants_for(guest_actor(p)) == [] and w.passes.in_force(p.id) is None
    assert w.svc.grants_for(w.officer)  # the agencies keep theirs


def test_text_delivery_carries_the_link_never_the_pin(tmp_path):
    from emergency.outbox import Outbox

    w = world(tmp_path)
    outbox = Outbox(w.store, w.clock, lambda topic: ["sms"] if topic == AuditEvent.GUEST_PASS_SENT else [])
    passes = GuestPasses(w.store, w.audit, w.clock, w.svc, outbox=outbox)
    e = active(w)
    issued = passes.issue(w.admin, e.id, send_to="+1 555 010 0199")
    [n] = outbox.due()
    assert n.payload["to"] == "+1 555 010 0199" and issued.link in n.payload["text"]
    assert issued.pin not in repr(n.payload)
    [sent] = events(w, AuditEvent.GUEST_PASS_SENT)
    assert sent.details["to"] == "…0199"
    with pytest.raises(Invalid):
        passes.issue(w.admin, e.id, send_to="call me maybe")
