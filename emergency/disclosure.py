"""The FERPA disclosure record of one emergency, derived from the audit log.

34 CFR 99.32(a)(5) asks the school to record the articulable and significant threat that
formed the basis of a health-or-safety disclosure and the parties to whom it disclosed;
99.33 asks that recipients be told of redisclosure limits; Illinois 23 IAC 375.60 asks
that parents be told by the next school day of the date, the recipient and the purpose.
Everything here is computed from what the audit log proves happened (sessions that
actually carried video, snapshots actually served), not from what grants allowed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from emergency.audit import AuditEntry, AuditEvent
from emergency.model import Emergency, Grant
from emergency.site import Site

REDISCLOSURE_NOTICE = (
    "This video is disclosed to you under the health or safety emergency exception of FERPA "
    "(34 CFR 99.31(a)(10), 99.36). You may use it only to respond to this emergency and may not "
    "disclose it to any other party without the district's prior written consent, except as "
    "34 CFR 99.33 allows. Your access is recorded."
)


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime | None  # None: still open when the record was made
    kind: str = "video"  # "video" or "snapshot"

    @property
    def seconds(self) -> float | None:
        return round((self.end - self.start).total_seconds(), 3) if self.end else None


@dataclass(frozen=True)
class Access:
    """One officer's access to one camera: when, and what was shown."""

    officer: str
    agency: str | None
    camera: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class GuestParty:
    """A mutual-aid responder let in by a guest pass (emergency.guest_passes): a party the
    video was disclosed to, named as they gave themselves, whether or not they watched."""

    account: str
    name: str
    badge: str
    agency: str
    agency_id: str
    admitted_at: datetime

    @property
    def label(self) -> str:
        return f"mutual aid: {self.agency}"

    @property
    def display(self) -> str:
        return f"{self.name} (badge {self.badge}, {self.label})"


@dataclass(frozen=True)
class ParentNotice:
    due_by: date
    recipient: str
    purpose: str
    text: str


@dataclass(frozen=True)
class DisclosureRecord:
    emergency: Emergency
    threat_basis: str | None
    agencies: tuple[str, ...]  # agencies whose officers actually received video
    accesses: tuple[Access, ...]
    redisclosure_notice: str
    parent_notice: ParentNotice | None  # None when nothing was disclosed
    granted_agencies: tuple[str, ...] = ()  # agencies that were allowed, whether or not they watched
    drill: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    guests: tuple[GuestParty, ...] = ()

    @property
    def officers(self) -> tuple[str, ...]:
        return tuple(sorted({a.officer for a in self.accesses}))

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(sorted({a.camera for a in self.accesses}))


def next_school_day(day: date) -> date:
    """The next weekday; district calendars (holidays) are not known here, so the draft
    errs early, never late."""
    nxt = day + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    return nxt


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def emergency_entries(entries: Iterable[AuditEntry], emergency_id: str, grant_ids: set[str]) -> list[AuditEntry]:
    """The audit entries about one emergency: its own events and the views on its grants."""
    return [
        e
        for e in entries
        if e.details.get("emergency") == emergency_id
        or e.details.get("grant") in grant_ids
        or e.object == f"emergency:{emergency_id}"
    ]


def view_spans(entries: Iterable[AuditEntry], grant_ids: set[str]) -> dict[tuple[str, str, str | None], list[Span]]:
    """(officer, camera, agency) → spans, from view sessions and snapshots on ``grant_ids``."""
    started: dict[str, AuditEntry] = {}
    spans: dict[tuple[str, str, str | None], list[Span]] = defaultdict(list)
    for e in entries:
        if e.details.get("grant") not in grant_ids:
            continue
        camera = e.object.removeprefix("camera:")
        if e.event_type == AuditEvent.VIEW_STARTED:
            started[e.details["session"]] = e
        elif e.event_type == AuditEvent.VIEW_ENDED:
            opened = started.pop(e.details["session"], None)
            agency = opened.actor_agency if opened else e.actor_agency
            spans[(e.details["viewer"], camera, agency)].append(
                Span(datetime.fromisoformat(e.details["started"]), _at(e.details["ended"]))
            )
        elif e.event_type == AuditEvent.SNAPSHOT_SERVED:
            t = _at(e.details.get("captured")) or datetime.fromisoformat(e.ts)
            spans[(e.actor_id or "?", camera, e.actor_agency)].append(Span(t, t, "snapshot"))
    for opened in started.values():
        camera = opened.object.removeprefix("camera:")
        spans[(opened.actor_id or "?", camera, opened.actor_agency)].append(
            Span(datetime.fromisoformat(opened.ts), None)
        )
    return spans


def guest_parties(entries: Iterable[AuditEntry]) -> tuple[GuestParty, ...]:
    """The guests admitted, from their ``guest_pass.redeemed`` entries."""
    return tuple(
        GuestParty(
            account=e.actor_id or "?",
            name=str(e.details.get("guest_name")),
            badge=str(e.details.get("badge")),
            agency=str(e.details.get("guest_agency")),
            agency_id=str(e.details.get("agency")),
            admitted_at=datetime.fromisoformat(e.ts),
        )
        for e in entries
        if e.event_type == AuditEvent.GUEST_PASS_REDEEMED
    )


def build(site: Site, emergency: Emergency, grants: list[Grant], entries: Iterable[AuditEntry]) -> DisclosureRecord:
    entries = list(entries)
    grant_ids = {g.id for g in grants}
    guests = guest_parties(entries)
    guest_labels = {g.agency_id: g.label for g in guests}
    spans = view_spans(entries, grant_ids)
    accesses = tuple(
        Access(officer, agency, camera, tuple(sorted(s, key=lambda x: x.start)))
        for (officer, camera, agency), s in sorted(spans.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    )
    agencies = tuple(sorted({a.agency for a in accesses if a.agency}))
    names = ", ".join(site.agencies[a].name if a in site.agencies else guest_labels.get(a, a) for a in agencies)
    building = site.buildings[emergency.building].name if emergency.building in site.buildings else emergency.building
    notice = None
    if accesses:
        first = min(s.start for a in accesses for s in a.spans)
        purpose = (
            f"to let police respond to a {str(emergency.incident_type).replace('_', ' ')} emergency "
            f"({emergency.action}) at {building}"
        )
        notice = ParentNotice(
            due_by=next_school_day(first.date()),
            recipient=names,
            purpose=purpose,
            text=(
                f"On {first:%B %d, %Y}, during an emergency at {building}, the district gave {names} live access "
                f"to school security cameras {purpose}. Video of students may have been included. "
                "The district recorded each access. Contact the building office with questions."
            ),
        )
    notes = []
    if emergency.threat_basis is None:
        notes.append("The articulable and significant threat has not been recorded yet (34 CFR 99.36(c)).")
    if emergency.drill:
        notes.append("This was a drill: no real disclosure to record, but the chain was exercised end to end.")
    return DisclosureRecord(
        emergency=emergency,
        threat_basis=emergency.threat_basis,
        agencies=agencies,
        accesses=accesses,
        redisclosure_notice=REDISCLOSURE_NOTICE,
        parent_notice=notice,
        granted_agencies=tuple(sorted({g.agency for g in grants})),
        drill=emergency.drill,
        notes=tuple(notes),
        guests=guests,
    )
