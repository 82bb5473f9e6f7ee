"""An officer of an agency without a camera agreement is told so, and whom to call."""

import pytest

from emergency.agreements import no_agreement_notice
from emergency.model import Action
from emergency.sample import sample_site_data
from emergency.site import SiteError, load_site
from tests.domain.test_emergency_grants import active, world


def test_during_a_live_emergency_the_outsider_is_told_the_agency_has_no_agreement_and_whom_to_call(tmp_path):
    w = world(tmp_path)
    e = active(w)
    notice = w.svc.no_agreement_notice(w.outsider)
    assert notice == (
        "Your agency, County Sheriff's Office, has no camera agreement with Lincoln School District 42, "
        "so the district cannot share its cameras with you during the emergency at Lincoln High School. "
        "To ask for access, call the district safety office, 555-0100."
    )
    # the refusal of a view says the same thing, and the audit records the real reason
    decision = w.svc.decide_view(w.outsider, "hs-front", source="10.0.0.9")
    assert (decision.allowed, decision.reason) == (False, "no_agreement")
    assert w.audit.entries()[-1].reason == "no_agreement"
    # the agreement agency's officer, and people who never watch video, get no such notice
    assert w.svc.no_agreement_notice(w.officer) is None
    assert w.svc.no_agreement_notice(w.dispatcher) is None
    assert w.svc.no_agreement_notice(w.admin) is None
    # after the all-clear the notice no longer speaks of an emergency
    w.svc.all_clear(w.admin, e.id)
    after = w.svc.no_agreement_notice(w.outsider)
    assert after is not None and "during" not in after and "555-0100" in after


def test_an_outsider_is_never_granted_by_the_notice(tmp_path):
    w = world(tmp_path)
    active(w, Action.LOCKDOWN)
    assert w.svc.grants_for(w.outsider) == []
    assert not any(w.svc.decide_view(w.outsider, c).allowed for c in w.site.cameras)


def test_without_a_contact_the_words_still_say_what_to_do_and_name_every_live_emergency(tmp_path):
    w = world(tmp_path)
    active(w, building="washington-ms")
    active(w, building="lincoln-hs")
    data = sample_site_data()
    del data["district"]["camera_contact"]
    site = load_site(data)
    notice = no_agreement_notice(site, w.outsider, w.svc.list(open_only=True), w.clock.now())
    assert notice is not None
    assert "during the emergency at Lincoln High School and Washington Middle School." in notice
    assert "the district has named no contact for this" in notice


def test_camera_contact_must_be_words():
    data = sample_site_data()
    data["district"]["camera_contact"] = ""
    with pytest.raises(SiteError, match="district.camera_contact"):
        load_site(data)
