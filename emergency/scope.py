"""What an active emergency shares, and with whom.

Only ``normal`` cameras of the emergency's own building, in the zones the policy names
for the action, go to agencies named in the intergovernmental agreement. ``sensitive``
and ``never`` cameras are never shared by scope. An action that shares nothing (HOLD,
SHELTER by default) produces no grant at all, so the disclosure record lists no
agency that could not see anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from emergency.model import Action, Emergency, Grant
from emergency.site import PrivacyClass, Site


def shared_cameras(site: Site, building: str, action: Action) -> frozenset[str]:
    """Normal cameras of the building whose zone or a coverage tag the action shares."""
    return frozenset(
        c.id
        for c in site.cameras.values()
        if c.building == building and c.privacy is PrivacyClass.NORMAL and site.policy.shares(action, c.zone, c.tags)
    )


def planned_grants(site: Site, e: Emergency, new_id: Callable[[], str], starts: datetime | None = None) -> list[Grant]:
    """Grants for ``e`` from ``starts`` (default: activation) to the end of its time-box:
    one per agreement agency."""
    starts = starts or e.activated_at
    if starts is None or e.expires_at is None or starts >= e.expires_at:
        return []
    cameras = shared_cameras(site, e.building, e.action)
    if not cameras:
        return []
    return [
        Grant(new_id(), e.id, agency.id, cameras, starts, e.expires_at)
        for agency in site.agencies.values()
        if agency.agreement
    ]
