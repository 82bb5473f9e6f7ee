"""A small sample district, as the dict ``load_site`` takes: for the demo and for tests.

Two buildings, cameras of every privacy class, one agency under the agreement and
one outside it, and an account for every role.
"""

from __future__ import annotations

import copy
from typing import Any

ZONES = ["exterior", "entrances", "hallways", "gym", "office", "nurse", "time-out", "restrooms"]

# (id, name, building, zone, privacy, floor-plan position as fractions of the plan image)
_CAMERAS = [
    ("hs-parking", "HS parking lot", "lincoln-hs", "exterior", "normal", (0.10, 0.90)),
    ("hs-front", "HS front entrance", "lincoln-hs", "entrances", "normal", (0.50, 0.95)),
    ("hs-hall-a", "HS hallway A", "lincoln-hs", "hallways", "normal", (0.50, 0.55)),
    ("hs-gym", "HS gym", "lincoln-hs", "gym", "normal", (0.85, 0.30)),
    ("hs-office", "HS main office", "lincoln-hs", "office", "normal", (0.30, 0.80)),
    ("hs-nurse", "HS nurse office", "lincoln-hs", "nurse", "sensitive", (0.20, 0.60)),
    ("hs-timeout", "HS time-out room", "lincoln-hs", "time-out", "sensitive", (0.70, 0.60)),
    ("hs-restroom-hall", "HS restroom corridor", "lincoln-hs", "restrooms", "never", (0.60, 0.40)),
    ("ms-front", "MS front entrance", "washington-ms", "entrances", "normal", (0.50, 0.95)),
    ("ms-hall", "MS main hallway", "washington-ms", "hallways", "normal", (0.50, 0.50)),
]


def _camera(cid: str, name: str, building: str, zone: str, privacy: str, pos: tuple[float, float]) -> dict[str, Any]:
    """Simulated streams: a light main stream for a focused view, a smaller sub stream for grids."""
    return {
        "id": cid, "name": name, "building": building, "zone": zone, "privacy": privacy,
        "main": f"synthetic://{cid}?w=640&h=360&fps=15",
        "sub": f"synthetic://{cid}?w=320&h=180&fps=15",
        "position": list(pos),
    }


_SAMPLE: dict[str, Any] = {
    "district": {"id": "lincoln-d42", "name": "Lincoln School District 42"},
    "buildings": [
        {"id": "lincoln-hs", "name": "Lincoln High School", "zones": ZONES},
        {"id": "washington-ms", "name": "Washington Middle School", "zones": ZONES},
    ],
    "agencies": [
        {"id": "village-pd", "name": "Village Police Department", "agreement": True},
        {"id": "county-sheriff", "name": "County Sheriff's Office", "agreement": False},
    ],
    "accounts": [
        {"id": "admin", "name": "Alex Kim (district safety director)", "role": "district_admin"},
        {"id": "principal", "name": "Sam Ortiz (principal, Lincoln High)", "role": "building_admin",
         "buildings": ["lincoln-hs"]},
        {"id": "dispatcher", "name": "Lee Park (village 911 dispatch)", "role": "dispatcher", "agency": "village-pd"},
        {"id": "officer", "name": "Officer Dana Reyes", "role": "officer", "agency": "village-pd"},
        {"id": "outsider", "name": "Deputy Chris Hale (no agreement)", "role": "officer", "agency": "county-sheriff"},
        {"id": "auditor", "name": "Robin Fox (records auditor)", "role": "auditor"},
        {"id": "records", "name": "District records system (threat assessment, restraint log, reports)",
         "role": "records_client", "scopes": ["records:threats", "records:restraints", "records:reports"]},
    ],
    "cameras": [_camera(*c) for c in _CAMERAS],
    "policy": {
        "version": 1,
        "default_timebox_minutes": 60,
        "hard_max_minutes": 480,
        "confirm_window_seconds": 10,
        "shared_zones": {"HOLD": [], "SECURE": ["exterior", "entrances"], "LOCKDOWN": ["*"],
                         "EVACUATE": ["*"], "SHELTER": []},
    },
}


def sample_site_data() -> dict[str, Any]:
    """A fresh copy each call, so callers may edit it."""
    return copy.deepcopy(_SAMPLE)
