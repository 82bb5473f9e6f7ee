"""Links to the district's own record systems, and the effect each record has here.

Sightline does not keep threat assessments, restraint episodes or incident reports; it
keeps a link (source system, external id, building, the few fields that drive an
effect) and applies the effect:

- a threat classified high or imminent proposes an emergency for its building, with the
  record's basis pre-filled as the threat text (DOMAIN: TAT levels, 001 line 321-323);
- an open restraint or time-out episode puts the cameras covering its location under a
  privacy hold (23 IAC 1.285(a)(5): no electronic monitoring of a student in time out);
- a firearm-observed report proposes an emergency (004 line 1490); the reporting staff
  member's identity is never stored, so it can never be shown to police;
- a police detention notice is kept for need-to-know roles only (004 lines 1801-1803).

Posting the same record again (same source and external id) updates the link and never
repeats an effect, so a records system may retry freely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.errors import Conflict, DomainError, Invalid
from emergency.model import Action, IncidentType, State, Trigger
from emergency.site import Site

if TYPE_CHECKING:
    from emergency.service import EmergencyService
    from emergency.store import RecordStore

E = TypeVar("E", bound=StrEnum)


class RecordKind(StrEnum):
    THREAT = "threat"
    RESTRAINT = "restraint"
    REPORT = "report"


class ThreatLevel(StrEnum):
    ROUTINE = "routine"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    IMMINENT = "imminent"


class EpisodeType(StrEnum):
    ISOLATED_TIME_OUT = "isolated_time_out"
    TIME_OUT = "time_out"
    PHYSICAL_RESTRAINT = "physical_restraint"


class ReportKind(StrEnum):
    FIREARM_OBSERVED = "firearm_observed"
    VERIFIED_DRUG_INCIDENT = "verified_drug_incident"
    FORCIBLE_FELONY = "forcible_felony"
    ATTACK_ON_STAFF = "attack_on_staff"
    STUDENT_DETENTION = "student_detention"  # police → school


PROPOSING_LEVELS = {ThreatLevel.HIGH: Action.SECURE, ThreatLevel.IMMINENT: Action.LOCKDOWN}
PROPOSING_REPORTS = {ReportKind.FIREARM_OBSERVED: Action.LOCKDOWN}


@dataclass(frozen=True)
class RecordLink:
    kind: RecordKind
    source: str
    external_id: str
    building: str
    fields: dict[str, Any]
    received: datetime
    updated: datetime
    emergency_id: str | None = None  # the proposal or emergency this record started
    review: str | None = None  # e.g. a privacy hold that outlived its maximum


@dataclass(frozen=True)
class PrivacyHoldChanged:
    """Cameras that came under a hold (sessions on them must end now) or left one."""

    building: str
    held: frozenset[str]
    released: frozenset[str]


class RecordsService:
    def __init__(
        self,
        site: Site,
        store: RecordStore,
        audit: AuditLog,
        clock: Clock,
        emergencies: EmergencyService,
        listeners: Sequence[Callable[[object], None]] = (),
    ) -> None:
        self._site = site
        self._store = store
        self._audit = audit
        self._clock = clock
        self._emergencies = emergencies
        self._listeners = list(listeners)
        self._held: dict[str, frozenset[str]] = {}

    def add_listener(self, fn: Callable[[object], None]) -> None:
        self._listeners.append(fn)

    # what the gateway and the domain ask

    def held_cameras(self, at: datetime | None = None) -> frozenset[str]:
        """Cameras under a privacy hold now: covering the location of an open episode
        that has not outlived the policy's maximum."""
        now = at or self._clock.now()
        limit = timedelta(minutes=self._site.policy.privacy_hold_max_minutes)
        held: set[str] = set()
        for link in self._store.record_links(RecordKind.RESTRAINT, open_only=True):
            start, end = _episode(link)
            if start <= now and (end is None or now < end) and now < start + limit:
                held |= self.covering(link.building, link.fields["location"])
        return frozenset(held)

    def covering(self, building: str, location: str) -> set[str]:
        return {
            c.id
            for c in self._site.cameras.values()
            if c.building == building and (c.zone == location or location in c.tags)
        }

    def refresh_holds(self) -> None:
        """Apply the clock to holds: an episode that ended or outlived its maximum
        releases its cameras (the latter flagged for review). Called by the ticker."""
        now = self._clock.now()
        limit = timedelta(minutes=self._site.policy.privacy_hold_max_minutes)
        for link in self._store.record_links(RecordKind.RESTRAINT, open_only=True):
            start, end = _episode(link)
            if end is None and now >= start + limit and link.review is None:
                flagged = replace(link, review=f"privacy hold reached its {limit} maximum; review the episode")
                self._store.upsert_record_link(flagged)
                self._audit.append(
                    AuditEvent.PRIVACY_HOLD_REVIEW,
                    actor_id="system",
                    outcome="failure",
                    object=_obj(link),
                    reason=flagged.review,
                    details={"building": link.building, "location": link.fields["location"]},
                )
        self._publish_hold_changes()

    # records

    def upsert_threat(
        self,
        client: str,
        *,
        source: str,
        external_id: str,
        building: str,
        classification: str,
        status: str,
        basis: str | None,
        opened_at: datetime | None = None,
        source_address: str | None = None,
    ) -> RecordLink:
        level = self._member(ThreatLevel, classification, "classification")
        link = self._upsert(
            client,
            RecordKind.THREAT,
            source,
            external_id,
            building,
            {
                "classification": level,
                "status": status,
                "opened_at": _iso(opened_at),
            },
            source_address,
        )
        action = PROPOSING_LEVELS.get(level)
        if action and status not in ("closed", "resolved"):
            link = self._propose(
                client,
                link,
                action,
                IncidentType.OTHER,
                basis or f"Threat assessment {external_id} classified {level}",
                source_address,
            )
        return link

    def upsert_restraint(
        self,
        client: str,
        *,
        source: str,
        external_id: str,
        episode_type: str,
        building: str,
        location: str,
        start: datetime,
        end: datetime | None,
        source_address: str | None = None,
    ) -> RecordLink:
        """Only these fields are kept: no student, no staff names, no narrative."""
        kind = self._member(EpisodeType, episode_type, "type")
        if (
            building in self._site.buildings
            and not self.covering(building, location)
            and location not in self._site.buildings[building].zones
        ):
            self._refuse(
                client,
                RecordKind.RESTRAINT,
                source_address,
                Invalid(f"location: {location!r} is neither a zone nor a camera coverage tag of {building!r}"),
            )
        if end is not None and end < start:
            self._refuse(client, RecordKind.RESTRAINT, source_address, Invalid("end: before start"))
        link = self._upsert(
            client,
            RecordKind.RESTRAINT,
            source,
            external_id,
            building,
            {
                "type": kind,
                "location": location,
                "start": _iso(start),
                "end": _iso(end),
                "open": end is None,
            },
            source_address,
        )
        self._publish_hold_changes(client, link)
        return link

    def upsert_report(
        self,
        client: str,
        *,
        source: str,
        external_id: str,
        kind: str,
        building: str,
        occurred_at: datetime,
        source_address: str | None = None,
    ) -> RecordLink:
        report = self._member(ReportKind, kind, "kind")
        link = self._upsert(
            client,
            RecordKind.REPORT,
            source,
            external_id,
            building,
            {
                "kind": report,
                "occurred_at": _iso(occurred_at),
            },
            source_address,
        )
        action = PROPOSING_REPORTS.get(report)
        if action:
            link = self._propose(
                client,
                link,
                action,
                IncidentType.ARMED_INTRUDER,
                f"Staff report {external_id}: firearm observed on school grounds",
                source_address,
            )
        return link

    def links(self, kind: RecordKind | None = None) -> list[RecordLink]:
        return self._store.record_links(kind)

    def get(self, kind: RecordKind, source: str, external_id: str) -> RecordLink | None:
        """The link a record system posted under (source, external id), if any."""
        return self._store.get_record_link(kind, source, external_id)

    # internals

    def _upsert(
        self,
        client: str,
        kind: RecordKind,
        source: str,
        external_id: str,
        building: str,
        fields: dict[str, Any],
        source_address: str | None,
    ) -> RecordLink:
        if building not in self._site.buildings:
            self._refuse(client, kind, source_address, Invalid(f"building: {building!r} is not a building of the site"))
        now = self._clock.now()
        existing = self._store.get_record_link(kind, source, external_id)
        if existing is not None and existing.building != building:
            self._refuse(
                client,
                kind,
                source_address,
                Conflict(f"record {source}/{external_id} belongs to {existing.building!r}, not {building!r}"),
            )
        link = RecordLink(
            kind,
            source,
            external_id,
            building,
            fields,
            existing.received if existing else now,
            now,
            existing.emergency_id if existing else None,
            existing.review if existing else None,
        )
        changed = existing is None or existing.fields != fields
        self._store.upsert_record_link(link)
        if changed:
            self._audit.append(
                AuditEvent.of_record(kind, "received" if existing is None else "updated"),
                actor_id=client,
                object=_obj(link),
                source=source_address,
                details={"building": building, **fields, **self._open_emergency(building)},
            )
        return link

    def _propose(
        self,
        client: str,
        link: RecordLink,
        action: Action,
        incident: IncidentType,
        basis: str,
        source_address: str | None,
    ) -> RecordLink:
        if link.emergency_id is not None:
            return link  # this record already proposed once: never again
        try:
            emergency = self._emergencies.declare(
                None,
                building=link.building,
                action=action,
                incident_type=incident,
                threat_basis=basis,
                source=source_address,
                trigger=Trigger.RECORDS,
                origin=f"{link.kind}:{link.source}/{link.external_id}",
            )
        except Conflict:
            open_now = next(e for e in self._emergencies.list(open_only=True) if e.building == link.building)
            self._audit.append(
                AuditEvent.RECORD_EFFECT,
                actor_id=client,
                object=_obj(link),
                source=source_address,
                reason="the building already has an open emergency; linked to it",
                details={"emergency": open_now.id, "building": link.building},
            )
            linked = replace(link, emergency_id=open_now.id)
            self._store.upsert_record_link(linked)
            return linked
        linked = replace(link, emergency_id=emergency.id)
        self._store.upsert_record_link(linked)
        self._audit.append(
            AuditEvent.RECORD_EFFECT,
            actor_id=client,
            object=_obj(link),
            source=source_address,
            reason=f"proposed {action} ({emergency.state}, {emergency.activation})",
            details={"emergency": emergency.id, "building": link.building},
        )
        return linked

    def _publish_hold_changes(self, client: str | None = None, link: RecordLink | None = None) -> None:
        current: dict[str, set[str]] = {}
        for camera_id in self.held_cameras():
            current.setdefault(self._site.cameras[camera_id].building, set()).add(camera_id)
        for building in set(current) | set(self._held):
            now_held = frozenset(current.get(building, set()))
            before = self._held.get(building, frozenset())
            if now_held == before:
                continue
            event = PrivacyHoldChanged(building, now_held - before, before - now_held)
            self._held[building] = now_held
            for happened, cameras in (
                (AuditEvent.PRIVACY_HOLD_STARTED, event.held),
                (AuditEvent.PRIVACY_HOLD_ENDED, event.released),
            ):
                if cameras:
                    self._audit.append(
                        happened,
                        actor_id=client or "system",
                        object=_obj(link) if link else f"building:{building}",
                        details={"building": building, "cameras": sorted(cameras), **self._open_emergency(building)},
                    )
            for fn in list(self._listeners):
                fn(event)

    def _open_emergency(self, building: str) -> dict[str, Any]:
        """Ties a record's audit entries to the building's open emergency, so they appear on its timeline."""
        for e in self._store.list_emergencies(open_only=True):
            if e.building == building and e.state in (State.PENDING, State.ACTIVE):
                return {"emergency": e.id}
        return {}

    def _member(self, enum: type[E], value: str, field: str) -> E:
        try:
            return enum(value)
        except ValueError:
            raise Invalid(f"{field}: {value!r} is not one of {', '.join(m.value for m in enum)}") from None

    def _refuse(self, client: str, kind: RecordKind, source_address: str | None, err: DomainError) -> None:
        self._audit.append(
            AuditEvent.of_record(kind, "refused"),
            actor_id=client,
            object=f"record:{kind}",
            outcome="denied",
            source=source_address,
            reason=f"{err.code}: {err}",
        )
        raise err


def _obj(link: RecordLink) -> str:
    return f"record:{link.kind}:{link.source}/{link.external_id}"


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _episode(link: RecordLink) -> tuple[datetime, datetime | None]:
    """A restraint episode's start, and its end once it ended."""
    return datetime.fromisoformat(link.fields["start"]), _dt(link.fields.get("end"))


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
