"""Telling an officer whose agency has no camera agreement why they see no camera.

Without this an officer of a neighbouring agency, arriving at a school in lockdown, reads
"no emergency gives you access" and may believe nothing is happening. The district's
plan shares cameras only with agencies named in its intergovernmental agreement, so the
honest answer is that their agency has none, and whom to call (``[district]
camera_contact`` in the site file).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from emergency.model import Actor, Emergency
from emergency.permissions import Permission, may
from emergency.site import Site

NO_AGREEMENT = "no_agreement"  # the reason of a refused view (audit, WHEP)


def lacks_agreement(site: Site, actor: Actor) -> bool:
    """An actor who would watch video (an officer) for a site agency outside the agreement."""
    agency = site.agencies.get(actor.agency or "")
    return agency is not None and not agency.agreement and may(actor, Permission.WATCH_LIVE)


def no_agreement_notice(site: Site, actor: Actor, emergencies: Iterable[Emergency], now: datetime) -> str | None:
    """The plain words for such an officer, naming the live emergencies if any; None for
    everyone else."""
    if not lacks_agreement(site, actor):
        return None
    agency = site.agencies[actor.agency or ""]
    live = sorted({site.buildings[e.building].name for e in emergencies if e.sharing_at(now)})
    during = f" during the emergency at {_listed(live)}" if live else ""
    call = (
        f"To ask for access, call {site.camera_contact}."
        if site.camera_contact
        else "To ask for access, call the district's office: the district has named no contact for this."
    )
    return (
        f"Your agency, {agency.name}, has no camera agreement with {site.district_name}, "
        f"so the district cannot share its cameras with you{during}. {call}"
    )


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
