"""The source address the audit and the limits use: X-Forwarded-For only from listed proxies."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config import ConfigError, load_config
from gateway.identity.proxies import parse_networks, resolve

FORGED = {"Authorization": "Bearer forged.token.value"}
PROXIES = 'node = "demo"\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]'


def nets(*values: str) -> tuple:
    return tuple(ipaddress.ip_network(v) for v in values)


def test_forwarded_for_is_read_from_the_right_past_trusted_hops_only() -> None:
    trusted = nets("127.0.0.1/32", "10.0.0.0/8")
    assert resolve("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"  # nothing listed: the peer
    assert resolve("192.0.2.1", ["198.51.100.7"], trusted) == "192.0.2.1"  # unlisted peer: ignored
    assert resolve("127.0.0.1", ["198.51.100.7"], trusted) == "198.51.100.7"
    assert resolve("127.0.0.1", ["198.51.100.7, 10.1.2.3"], trusted) == "198.51.100.7"  # two proxies
    # what the client wrote itself (left of the first untrusted hop) proves nothing
    assert resolve("127.0.0.1", ["1.1.1.1, 203.0.113.5"], trusted) == "203.0.113.5"
    assert resolve("127.0.0.1", ["1.1.1.1", "203.0.113.5"], trusted) == "203.0.113.5"  # repeated header
    assert resolve("127.0.0.1", ["not-an-address"], trusted) == "127.0.0.1"
    assert resolve("127.0.0.1", ["1.1.1.1, junk, 10.0.0.9"], trusted) == "10.0.0.9"
    assert resolve("127.0.0.1", [], trusted) == "127.0.0.1"
    assert resolve("127.0.0.1", ["[2001:db8::1]:443"], trusted) == "2001:db8::1"
    assert resolve("::ffff:10.0.0.2", ["198.51.100.7:5000"], trusted) == "198.51.100.7"
    assert resolve(None, ["198.51.100.7"], trusted) is None


def test_trusted_proxies_in_the_site_file_are_checked(site_file) -> None:
    assert load_config(site_file()).trusted_proxies == ()
    assert parse_networks(["10.0.0.0/8", " ::1 "], "x") == nets("10.0.0.0/8", "::1/128")
    for bad in ('"10.0.0.0/8"', '["10.0.0.300"]', "[1]"):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            load_config(site_file({'node = "demo"': f'node = "demo"\ntrusted_proxies = {bad}'}))


def failure_sources(gw) -> list[str | None]:
    return [e.source for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "auth.failure"]


async def test_spoofed_forwarded_for_from_an_unlisted_peer_is_not_recorded(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())  # a real uvicorn; the peer is 127.0.0.1, not listed
    async with gw.client() as client:
        r = await client.get("/api/v1/cameras", headers={**FORGED, "X-Forwarded-For": "203.0.113.66"})
        assert r.status_code == 401
        # nor does it escape the per-address sign-in limit by changing the header
        bad = {"username": "principal", "password": "nope", "totp": "123456"}
        answers = [
            (
                await client.post("/api/v1/auth/login", json=bad, headers={"X-Forwarded-For": f"198.51.100.{i}"})
            ).status_code
            for i in range(7)
        ]
    assert answers == [401] * 5 + [429] * 2
    assert failure_sources(gw) == ["127.0.0.1"]
    logins = [e for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "auth.login"]
    assert logins and {e.source for e in logins} == {"127.0.0.1"}


async def test_forwarded_for_from_a_listed_proxy_is_recorded(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file({'node = "demo"': PROXIES}))
    async with gw.client() as client:
        await client.get("/api/v1/cameras", headers={**FORGED, "X-Forwarded-For": "203.0.113.66"})
        await client.get("/api/v1/cameras", headers={**FORGED, "X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.9.8.7"})
        await client.get("/api/v1/cameras", headers={**FORGED, "X-Forwarded-For": "garbage"})
    assert failure_sources(gw) == ["203.0.113.66", "198.51.100.7", "127.0.0.1"]
