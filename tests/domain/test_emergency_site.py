"""load_site: the sample loads, and every mistake is refused with its path."""

import pytest

from emergency.model import Action
from emergency.sample import sample_site_data
from emergency.site import PrivacyClass, Role, SiteError, load_site


def test_sample_site_loads_with_policy_defaults():
    data = sample_site_data()
    data["policy"] = {"version": 1}
    site = load_site(data)
    assert site.district_id == "lincoln-d42"
    assert site.cameras["hs-front"].privacy is PrivacyClass.NORMAL
    assert site.cameras["hs-front"].position == (0.5, 0.95)
    assert site.cameras["hs-gym"].sub.startswith("synthetic://") and site.cameras["hs-gym"].tags == ()
    assert site.accounts["officer"].role is Role.OFFICER
    assert site.accounts["admin"].buildings == ()
    p = site.policy
    assert (p.default_timebox_minutes, p.hard_max_minutes, p.confirm_window_seconds) == (60, 480, 10)
    assert p.require_explicit_confirm is False
    assert p.shares_zone(Action.LOCKDOWN, "gym") and not p.shares_zone(Action.SECURE, "gym")
    assert p.shares_zone(Action.SECURE, "entrances") and not p.shares_zone(Action.HOLD, "entrances")


def test_shared_zones_override_only_the_named_actions():
    data = sample_site_data()
    data["policy"]["shared_zones"] = {"HOLD": ["entrances"]}
    p = load_site(data).policy
    assert p.shares_zone(Action.HOLD, "entrances")
    assert p.shares_zone(Action.LOCKDOWN, "gym")


def _break(edit):
    data = sample_site_data()
    edit(data)
    with pytest.raises(SiteError) as err:
        load_site(data)
    return str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["cameras"][3].update(zone="gymm"),
            "cameras[3].zone: 'gymm' is not a zone of building 'lincoln-hs'",
        ),
        (lambda d: d["cameras"][0].update(building="north"), "cameras[0].building: 'north' is not a building"),
        (lambda d: d["cameras"][0].pop("privacy"), "cameras[0].privacy: required"),
        (lambda d: d["cameras"][0].update(privacy="public"), "cameras[0].privacy: 'public' is not one of"),
        (lambda d: d["cameras"][0].update(positon=[1, 2]), "cameras[0].positon: unknown key"),
        (lambda d: d["cameras"][0].update(position=[1]), "cameras[0].position: expected [x, y]"),
        (lambda d: d["cameras"][1].update(id="hs-parking"), "cameras[1].id: duplicate id 'hs-parking'"),
        (lambda d: d["cameras"][1].update(id="a b"), "cameras[1].id: 'a b' is not a valid id"),
        (lambda d: d["accounts"][3].update(role="cop"), "accounts[3].role: 'cop' is not one of"),
        (lambda d: d["accounts"][3].pop("agency"), "accounts[3].agency: an officer must belong to an agency"),
        (lambda d: d["accounts"][3].update(agency="fbi"), "accounts[3].agency: 'fbi' is not an agency"),
        (lambda d: d["accounts"][1].update(buildings=[]), "accounts[1].buildings: a building_admin needs"),
        (lambda d: d["agencies"][0].update(agreement="yes"), "agencies[0].agreement: expected true or false"),
        (lambda d: d["district"].pop("name"), "district.name: required"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["policy"].update(timebox=5), "policy.timebox: unknown key"),
        (lambda d: d["policy"].update(default_timebox_minutes=600), "policy.default_timebox_minutes: 600 exceeds"),
        (
            lambda d: d["policy"].update(confirm_window_seconds=True),
            "policy.confirm_window_seconds: expected an integer",
        ),
        (lambda d: d["policy"].update(shared_zones={"LOCKDWN": ["*"]}), "policy.shared_zones.LOCKDWN: unknown action"),
        (
            lambda d: d["policy"].update(shared_zones={"SECURE": ["entrance"]}),
            "policy.shared_zones.SECURE[0]: 'entrance' is not a zone of any building",
        ),
        (lambda d: d.update(buildings=[]), "buildings: at least one building"),
        (
            lambda d: d["buildings"][0].update(floor_plan="../plan.svg"),
            "buildings[0].floor_plan: building 'lincoln-hs': '../plan.svg' must stay inside the site file's folder",
        ),
        (
            lambda d: d["buildings"][1].update(floor_plan="/srv/plan.png"),
            "buildings[1].floor_plan: building 'washington-ms': '/srv/plan.png' must stay inside",
        ),
        (lambda d: d["buildings"][0].update(floor_plan="plans\\hs.svg"), "has a backslash; use '/'"),
        (lambda d: d["buildings"][0].update(floor_plan="plans/hs.pdf"), "'plans/hs.pdf' is not a floor plan image"),
        (lambda d: d["buildings"][0].update(floor_plan=""), "buildings[0].floor_plan: expected a non-empty string"),
        (lambda d: d.update(cameras={"id": "x"}), "cameras: expected an array of tables"),
    ],
)
def test_mistakes_name_their_path(edit, message):
    assert message in _break(edit)


def test_floor_plan_is_only_a_name_in_the_domain():
    data = sample_site_data(floor_plans=True)
    site = load_site(data)  # no file is looked at here: the gateway checks it (gateway/api/floor_plans.py)
    assert site.buildings["lincoln-hs"].floor_plan == "plans/lincoln-hs.svg"
    assert load_site(sample_site_data()).buildings["lincoln-hs"].floor_plan is None


def test_site_error_is_a_value_error():
    assert issubclass(SiteError, ValueError)
