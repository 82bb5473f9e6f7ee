"""A gateway listening on the root end of a viewer namespace's veth, with a LOCKDOWN active,
and viewer processes inside the namespace (tests/netns_viewer.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.app import create_app
from gateway.config import load_config
from gateway.runtime import Gateway

from .conftest import serve_app
from .netns import NetNs

VIEWER = Path(__file__).with_name("netns_viewer.py")
LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}


@dataclass
class LinkGateway:
    gateway: Gateway
    base_url: str
    ns: NetNs

    def token(self, user: str = "officer") -> str:
        return self.gateway.tokens.issue(user, ttl=900, amr=("pwd", "otp", "mfa"))[0]

    def viewer(self, camera: str = "hs-front", *args: str) -> subprocess.Popen[str]:
        """A viewer process in the namespace (see tests/netns_viewer.py for ``args``)."""
        return self.ns.python(VIEWER, self.base_url, camera, self.token(), *args)


async def start_link_gateway(site: Path, ns: NetNs) -> tuple[LinkGateway, object, asyncio.Task[None]]:
    gateway = Gateway(load_config(site))
    app = create_app(gateway)
    server, task, base_url = await serve_app(app, host=ns.gateway_ip)
    token = gateway.tokens.issue("admin", ttl=600, amr=("pwd", "otp", "mfa"))[0]
    import httpx

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as admin:
        e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
        confirmed = await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text
    return LinkGateway(gateway, base_url, ns), server, task


async def report(proc: subprocess.Popen[str], timeout: float) -> dict[str, list]:
    """The viewer's final JSON line (it exits by itself after ``--seconds``)."""
    out, _ = await asyncio.to_thread(proc.communicate, timeout=timeout)
    assert proc.returncode == 0, f"viewer exited {proc.returncode}"
    return json.loads(out.strip().splitlines()[-1])


def fps_between(frames: list[float], start: float, end: float) -> float:
    return sum(1 for t in frames if start <= t < end) / max(1e-6, end - start)


def longest_freeze(frames: list[float], start: float, end: float) -> float:
    """The longest gap between frames (or the window's edges) within [start, end)."""
    times = [start] + [t for t in frames if start <= t < end] + [end]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def first_after(frames: list[float], t0: float) -> float | None:
    return next((t for t in frames if t >= t0), None)


def now() -> float:
    return time.monotonic()
