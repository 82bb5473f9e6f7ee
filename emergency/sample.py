"""A small sample district, as the dict ``load_site`` takes: for the demo and for tests.

Two buildings, cameras of every privacy class, one agency under the agreement and
one outside it, and an account for every role. Each building also has a floor plan
(rooms below); ``sample_site_data(floor_plans=True)`` names the image files, which
``sightline demo`` draws next to its site file (gateway/cli/demo.py).
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


# The sample floor plans: rooms on a FLOOR_PLAN_SIZE canvas as (label, zone or None, x, y,
# width, height); each camera's position above falls inside a room of its zone. A label's
# "\n" breaks the line.
FLOOR_PLAN_SIZE = (1000, 700)
_FLOOR_PLANS: dict[str, list[tuple[str, str | None, int, int, int, int]]] = {
    "lincoln-hs": [
        ("Exterior\nparking", "exterior", 10, 430, 120, 260),
        ("Classrooms", None, 150, 40, 410, 300),
        ("Library", None, 560, 40, 140, 160),
        ("Restrooms", "restrooms", 560, 200, 140, 140),
        ("Gym", "gym", 700, 40, 270, 300),
        ("Nurse", "nurse", 150, 340, 150, 140),
        ("Hallway", "hallways", 300, 340, 670, 60),
        ("Counseling", None, 300, 400, 140, 80),
        ("Office", "office", 150, 480, 290, 140),
        ("Hallway", "hallways", 440, 400, 120, 220),
        ("Time-out room", "time-out", 560, 400, 220, 90),
        ("Classrooms", None, 560, 490, 220, 130),
        ("Cafeteria", None, 780, 400, 190, 220),
        ("Main\nentrance", "entrances", 440, 620, 120, 70),
    ],
    "washington-ms": [
        ("Gym", "gym", 120, 60, 320, 250),
        ("Classrooms", None, 440, 60, 440, 250),
        ("Hallway", "hallways", 120, 310, 760, 80),
        ("Office", "office", 120, 390, 180, 230),
        ("Nurse", "nurse", 300, 390, 140, 110),
        ("Time-out\nroom", "time-out", 300, 500, 140, 120),
        ("Hallway", "hallways", 440, 390, 120, 230),
        ("Restrooms", "restrooms", 560, 390, 140, 110),
        ("Classrooms", None, 560, 500, 140, 120),
        ("Cafeteria", None, 700, 390, 180, 230),
        ("Main\nentrance", "entrances", 440, 620, 120, 70),
        ("Exterior\nbus loop", "exterior", 890, 430, 100, 260),
    ],
}


def _camera(cid: str, name: str, building: str, zone: str, privacy: str, pos: tuple[float, float]) -> dict[str, Any]:
    """Simulated streams: a light main stream for a focused view, a smaller sub stream for grids."""
    return {
        "id": cid,
        "name": name,
        "building": building,
        "zone": zone,
        "privacy": privacy,
        "main": f"synthetic://{cid}?w=640&h=360&fps=15",
        "sub": f"synthetic://{cid}?w=320&h=180&fps=15",
        "position": list(pos),
    }


_SAMPLE: dict[str, Any] = {
    "district": {
        "id": "lincoln-d42",
        "name": "Lincoln School District 42",
        # whom an officer of an agency without a camera agreement is told to call
        "camera_contact": "the district safety office, 555-0100",
    },
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
        {
            "id": "principal",
            "name": "Sam Ortiz (principal, Lincoln High)",
            "role": "building_admin",
            "buildings": ["lincoln-hs"],
        },
        {"id": "dispatcher", "name": "Lee Park (village 911 dispatch)", "role": "dispatcher", "agency": "village-pd"},
        {"id": "officer", "name": "Officer Dana Reyes", "role": "officer", "agency": "village-pd"},
        {"id": "outsider", "name": "Deputy Chris Hale (no agreement)", "role": "officer", "agency": "county-sheriff"},
        {"id": "auditor", "name": "Robin Fox (records auditor)", "role": "auditor"},
        {
            "id": "records",
            "name": "District records system (threat assessment, restraint log, reports)",
            "role": "records_client",
            "scopes": ["records:threats", "records:restraints", "records:reports"],
        },
    ],
    "cameras": [_camera(*c) for c in _CAMERAS],
    "policy": {
        "version": 1,
        "default_timebox_minutes": 60,
        "hard_max_minutes": 480,
        "confirm_window_seconds": 10,
        "shared_zones": {
            "HOLD": [],
            "SECURE": ["exterior", "entrances"],
            "LOCKDOWN": ["*"],
            "EVACUATE": ["*"],
            "SHELTER": [],
        },
    },
}


def floor_plan_file(building_id: str) -> str:
    """Where the demo keeps a sample building's plan, relative to its site file."""
    return f"plans/{building_id}.svg"


def sample_site_data(*, floor_plans: bool = False) -> dict[str, Any]:
    """A fresh copy each call, so callers may edit it. With ``floor_plans`` every building
    names its plan image (``floor_plan_file``); whoever writes the site file must then
    write those images too (gateway.cli.demo.write_demo_plans)."""
    data = copy.deepcopy(_SAMPLE)
    if floor_plans:
        for building in data["buildings"]:
            building["floor_plan"] = floor_plan_file(building["id"])
    return data


def sample_floor_plans() -> dict[str, list[tuple[str, str | None, int, int, int, int]]]:
    """The sample buildings' rooms, by building id (see FLOOR_PLAN_SIZE)."""
    return copy.deepcopy(_FLOOR_PLANS)
