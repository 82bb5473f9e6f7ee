"""WS-Discovery against the simulator's UDP responder (unicast: no multicast in CI)."""

from __future__ import annotations

import pytest

from camera_adapters.discovery import discover, parse_probe_matches, probe_message

pytestmark = pytest.mark.timeout(15)


async def test_discover_finds_the_simulator(onvif_camera) -> None:
    sim = onvif_camera.start(name="Gym North", hardware="SL-CAM-1000")
    other = onvif_camera.start(name="Front Door")
    devices = await discover(
        1.0, targets=[("127.0.0.1", sim.udp_port), ("127.0.0.1", other.udp_port), ("127.0.0.1", sim.udp_port)]
    )
    assert [d.name for d in devices] == ["Front Door", "Gym North"]
    gym = devices[1]
    assert gym.address == sim.endpoint
    assert gym.xaddrs == (sim.device_url,)
    assert gym.hardware == "SL-CAM-1000"
    assert gym.location == "building/lincoln-high"
    assert "onvif://www.onvif.org/Profile/Streaming" in gym.scopes
    assert sim.calls["Probe"] == 2


async def test_discover_with_nobody_listening() -> None:
    assert await discover(0.3, targets=[("127.0.0.1", 9)]) == []


def test_answers_to_someone_elses_probe_are_ignored() -> None:
    assert parse_probe_matches(b"<not-xml", "uuid:1") == []
    assert parse_probe_matches(probe_message("uuid:1"), "uuid:1") == []
