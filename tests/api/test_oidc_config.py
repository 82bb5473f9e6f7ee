"""The ``oidc`` table of ``[[agencies]]`` and ``[district]``: read before the domain sees
the site file, and every mistake named with its key and what to do."""

from __future__ import annotations

import pytest

from emergency.site import Role
from gateway.cli.demo import ensure_demo_site
from gateway.config import ConfigError, load_config
from gateway.identity.credentials import CredentialBox

pytestmark = pytest.mark.api

GOOD = (
    'oidc = { issuer = "https://login.village.example/", client_id = "sightline", client_secret = "SEALED", '
    'mfa_amr = ["mfa"], roles = { "patrol" = "officer", "911" = "dispatcher" }, badge_claim = "badge" }'
)


def write(tmp_path, agency_table: str | None = GOOD, district_table: str | None = None):
    path = ensure_demo_site(tmp_path)
    sealed = CredentialBox.for_dir(tmp_path / "secrets").seal("the-client-secret")
    text = path.read_text()
    if agency_table:
        text = text.replace('id = "village-pd"\n', f'id = "village-pd"\n{agency_table}\n', 1)
    if district_table:
        text = text.replace(
            'name = "Lincoln School District 42"\n', f'name = "Lincoln School District 42"\n{district_table}\n'
        )
    path.write_text(text.replace("SEALED", sealed))
    return path


def test_an_agency_provider_is_read_and_kept_out_of_the_domain(tmp_path) -> None:
    config = load_config(write(tmp_path))
    provider = config.oidc["village-pd"]
    assert provider.issuer == "https://login.village.example"  # no trailing slash
    assert provider.owner_name == "Village Police Department" and not provider.district
    assert provider.groups_claim == "groups" and provider.badge_claim == "badge"
    assert provider.role_for(frozenset({"911"})).role is Role.DISPATCHER
    assert provider.role_for(frozenset({"nothing"})).role is Role.OFFICER  # an agency's default
    assert provider.proves_mfa(["pwd", "mfa"], None) and not provider.proves_mfa(["pwd"], "x")
    assert "SEALED" not in repr(provider) and "enc:" not in repr(provider)
    assert config.site.agencies["village-pd"].name == "Village Police Department"
    assert "county-sheriff" not in config.oidc


def test_district_staff_roles_with_buildings(tmp_path) -> None:
    table = GOOD.replace(
        '{ "patrol" = "officer", "911" = "dispatcher" }',
        '{ "safety" = "district_admin", "lincoln" = { role = "building_admin", buildings = ["lincoln-hs"] } }',
    )
    config = load_config(write(tmp_path, None, table))
    provider = config.oidc["lincoln-d42"]
    assert provider.district and provider.owner_name == "Lincoln School District 42"
    rule = provider.role_for(frozenset({"lincoln"}))
    assert rule.role is Role.BUILDING_ADMIN and rule.buildings == ("lincoln-hs",)
    assert provider.role_for(frozenset({"cafeteria"})) is None  # staff get no role by default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("SEALED", "plain-secret"),
            "client_secret is stored in plain text; replace it with what 'echo -n SECRET | sightline seal --config SITE.toml'",
        ),
        (('issuer = "https://login.village.example/"', 'issuer = "http://login.village.example"'), "must use https"),
        (('mfa_amr = ["mfa"]', "mfa_amr = []"), "needs mfa_amr or mfa_acr"),
        (('badge_claim = "badge"', 'badge = "x"'), "unknown keys ['badge']"),
        (('"911" = "dispatcher"', '"911" = "district_admin"'), "must be one of officer, dispatcher"),
        (('client_id = "sightline", ', ""), "client_id is required"),
    ],
)
def test_mistakes_are_named(tmp_path, change, message) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(*change)))
    assert "agencies[0].oidc" in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("{}", "must map at least one group to a role"),
        ('{ "x" = "building_admin" }', "a building_admin needs its buildings"),
        ('{ "x" = { role = "building_admin", buildings = ["nowhere"] } }', "'nowhere' is not a building"),
        ('{ "x" = "officer" }', "must be one of district_admin, building_admin, dispatcher, auditor"),
    ],
)
def test_district_mistakes_are_named(tmp_path, roles, message) -> None:
    table = GOOD.replace('{ "patrol" = "officer", "911" = "dispatcher" }', roles)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, None, table))
    assert "district.oidc" in str(caught.value) and message in str(caught.value)
