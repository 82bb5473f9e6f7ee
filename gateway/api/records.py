"""The thin records API: the district's record systems post links here (OAuth2 client
credentials, one scope per record type) and Sightline applies their effect
(emergency/records.py): a proposal, a privacy hold, a timeline entry.

Posting is an idempotent upsert keyed by (source, id): ``201`` when the link is new,
``200`` when it was already known (``result`` says ``unchanged`` or ``updated``); an
effect never repeats. Bodies are exact (unknown fields are refused, so nothing beyond
the listed fields can be stored: no student, no staff names, no narrative, no
reporter). Every refusal is audited, including malformed bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from emergency.audit import AuditEvent
from emergency.permissions import Permission, may
from emergency.records import EpisodeType, RecordKind, RecordLink, ReportKind, ThreatLevel
from emergency.site import Site
from gateway.api.deps import ActorDep, GatewayDep, SourceDep, client_address, gateway
from gateway.errors import ApiError
from gateway.identity.guards import requires
from gateway.identity.tokens import Identity
from gateway.runtime import Gateway

_KIND_OF_PATH = {"threats": RecordKind.THREAT, "restraints": RecordKind.RESTRAINT, "reports": RecordKind.REPORT}


class ErrorBody(BaseModel):
    """Every error of this API."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: str


class AuditedRoute(APIRoute):
    """A body that fails validation is a refused record: audit it like the domain's refusals."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                kind = _KIND_OF_PATH.get(request.url.path.rstrip("/").rsplit("/", 1)[-1])
                if request.method == "POST" and kind is not None:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                        for e in exc.errors()
                    )
                    gateway(request).audit.append(
                        AuditEvent.of_record(kind, "refused"),
                        actor_id=getattr(request.state, "records_client", "unknown"),
                        object=f"record:{kind}",
                        outcome="denied",
                        source=client_address(request),
                        reason=f"invalid_request: {problems}"[:1000],
                    )
                raise

        return audited


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid bearer token"},
    403: {
        "model": ErrorBody,
        "description": "not a records client, or the token lacks the scope (error insufficient_scope)",
    },
    409: {"model": ErrorBody, "description": "the record is already linked to another building"},
    422: {
        "model": ErrorBody,
        "description": "the body is not valid (unknown building or location, unknown field, bad value)",
    },
}

router = APIRouter(prefix="/api/v1/records", tags=["records"], route_class=AuditedRoute)


def _bounded(t: datetime) -> datetime:
    if not 2000 <= t.astimezone(UTC).year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return t


Timestamp = Annotated[
    AwareDatetime, AfterValidator(_bounded), Field(description="RFC 3339 date-time with a timezone offset")
]
SourceSystem = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="the records system's name, e.g. 'tat' or 'sis'",
    ),
]
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
BuildingId = Annotated[str, Field(min_length=1, max_length=100, description="a building id of the site file")]


class ThreatStatus(StrEnum):
    OPEN = "open"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"


class ThreatIn(BaseModel):
    """A threat-assessment case (TAT). ``high`` or ``imminent`` while not resolved/closed
    proposes an emergency for the building with ``basis`` as its threat text."""

    model_config = ConfigDict(extra="forbid")

    source: SourceSystem
    case_id: ExternalId
    building: BuildingId
    classification: ThreatLevel
    status: ThreatStatus
    opened_at: Timestamp
    basis: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="short articulable-threat text; becomes the emergency's threat basis",
    )


class RestraintIn(BaseModel):
    """A restraint or time-out episode. While open (no ``end``), the cameras covering its
    location are under a privacy hold. Only these fields are kept."""

    model_config = ConfigDict(extra="forbid")

    source: SourceSystem
    episode_id: ExternalId
    type: EpisodeType
    building: BuildingId
    location: str = Field(min_length=1, max_length=64, description="a zone or camera-coverage tag of the site file")
    start: Timestamp
    end: Timestamp | None = None


class ReportIn(BaseModel):
    """School → police incident report, or a police → school detention notice. No
    reporter field exists: the reporting staff member's identity is never stored."""

    model_config = ConfigDict(extra="forbid")

    source: SourceSystem
    report_id: ExternalId
    kind: ReportKind
    building: BuildingId
    occurred_at: Timestamp


Result = Literal["created", "updated", "unchanged"]
Effect = Literal["none", "proposal", "linked", "privacy_hold", "privacy_hold_ended"]


class RecordOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RecordKind
    source: str
    external_id: str
    building: str
    result: Result
    received: datetime
    updated: datetime
    effect: Effect = Field(
        description="proposal: this record proposed an emergency; linked: the building already had one; "
        "privacy_hold(_ended): the cameras covering the episode's location"
    )
    emergency: str | None = None
    cameras: list[str] = Field(default_factory=list)
    review: str | None = None


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    report_id: str
    kind: ReportKind
    building: str
    occurred_at: datetime
    received: datetime
    emergency: str | None = None


def describe_site(doc: dict[str, Any], site: Site) -> None:
    """Make the OpenAPI document exact for this deployment: the building ids and the
    locations (zones and camera-coverage tags) of the site file are enumerated."""
    schemas = doc.get("components", {}).get("schemas", {})
    buildings = sorted(site.buildings)
    locations = sorted(
        {z for b in site.buildings.values() for z in b.zones} | {t for c in site.cameras.values() for t in c.tags}
    )
    for name in ("ThreatIn", "RestraintIn", "ReportIn"):
        props = schemas.get(name, {}).get("properties", {})
        if "building" in props:
            props["building"]["enum"] = buildings
        if "location" in props:
            props["location"]["enum"] = locations
            props["location"]["description"] += " (a zone of the building, or a tag of one of its cameras)"


def _deny(request: Request, ident: Identity, reason: str) -> None:
    gateway(request).audit.append(
        AuditEvent.PERMISSION_DENIED,
        actor=ident.actor,
        object=f"http:{request.method} {request.url.path}",
        outcome="denied",
        source=client_address(request),
        reason=reason,
    )


def _check_building(request: Request, ident: Identity, building: str) -> None:
    if not ident.actor.covers(building):
        _deny(request, ident, f"client is not configured for building {building!r}")
        raise ApiError(403, "forbidden", f"this client may not post records for building {building!r}")


def _upsert(
    gw: Gateway, kind: RecordKind, source: str, external_id: str, response: Response, post: Callable[[], RecordLink]
) -> RecordOut:
    before = gw.records.get(kind, source, external_id)
    link = post()
    result: Result
    if before is None:
        response.status_code = 201
        result = "created"
    else:
        response.status_code = 200
        result = "unchanged" if before.fields == link.fields else "updated"
    return _view(gw, link, result)


def _view(gw: Gateway, link: RecordLink, result: Result) -> RecordOut:
    effect: Effect = "none"
    cameras: list[str] = []
    if link.kind is RecordKind.RESTRAINT:
        cameras = sorted(gw.records.covering(link.building, link.fields["location"]))
        held = gw.records.held_cameras()
        effect = "privacy_hold" if any(c in held for c in cameras) else "privacy_hold_ended"
    elif link.emergency_id is not None:
        origin = f"{link.kind}:{link.source}/{link.external_id}"
        effect = "proposal" if gw.emergencies.get(link.emergency_id).declared_by == origin else "linked"
    return RecordOut(
        kind=link.kind,
        source=link.source,
        external_id=link.external_id,
        building=link.building,
        result=result,
        received=link.received,
        updated=link.updated,
        effect=effect,
        emergency=link.emergency_id,
        cameras=cameras,
        review=link.review,
    )


_POST: dict[str, Any] = {
    "response_model": RecordOut,
    "status_code": 201,
    "responses": {
        200: {"model": RecordOut, "description": "already known: unchanged or updated; no effect is repeated"},
        **_ERRORS,
    },
}


@router.post("/threats", summary="Link a threat-assessment case (scope records:threats)", **_POST)
def post_threat(
    body: ThreatIn,
    request: Request,
    response: Response,
    gw: GatewayDep,
    source: SourceDep,
    ident: Annotated[Identity, Depends(requires(Permission.POST_THREAT_RECORDS))],
) -> RecordOut:
    _check_building(request, ident, body.building)
    return _upsert(
        gw,
        RecordKind.THREAT,
        body.source,
        body.case_id,
        response,
        lambda: gw.records.upsert_threat(
            ident.actor.id,
            source=body.source,
            external_id=body.case_id,
            building=body.building,
            classification=body.classification,
            status=body.status,
            basis=body.basis,
            opened_at=body.opened_at,
            source_address=source,
        ),
    )


@router.post("/restraints", summary="Link a restraint or time-out episode (scope records:restraints)", **_POST)
def post_restraint(
    body: RestraintIn,
    request: Request,
    response: Response,
    gw: GatewayDep,
    source: SourceDep,
    ident: Annotated[Identity, Depends(requires(Permission.POST_RESTRAINT_RECORDS))],
) -> RecordOut:
    _check_building(request, ident, body.building)
    return _upsert(
        gw,
        RecordKind.RESTRAINT,
        body.source,
        body.episode_id,
        response,
        lambda: gw.records.upsert_restraint(
            ident.actor.id,
            source=body.source,
            external_id=body.episode_id,
            episode_type=body.type,
            building=body.building,
            location=body.location,
            start=body.start,
            end=body.end,
            source_address=source,
        ),
    )


@router.post("/reports", summary="Link an incident report or detention notice (scope records:reports)", **_POST)
def post_report(
    body: ReportIn,
    request: Request,
    response: Response,
    gw: GatewayDep,
    source: SourceDep,
    ident: Annotated[Identity, Depends(requires(Permission.POST_REPORT_RECORDS))],
) -> RecordOut:
    _check_building(request, ident, body.building)
    return _upsert(
        gw,
        RecordKind.REPORT,
        body.source,
        body.report_id,
        response,
        lambda: gw.records.upsert_report(
            ident.actor.id,
            source=body.source,
            external_id=body.report_id,
            kind=body.kind,
            building=body.building,
            occurred_at=body.occurred_at,
            source_address=source,
        ),
    )


@router.get(
    "/reports",
    response_model=list[ReportOut],
    summary="Reports and detention notices (need to know: district admin, building admin of the building)",
    responses={401: _ERRORS[401], 403: {"model": ErrorBody, "description": "no need to know"}, 422: _ERRORS[422]},
    dependencies=[Depends(requires(Permission.READ_REPORT_LINKS))],
)
def list_reports(
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    building: Annotated[str | None, Query(max_length=100)] = None,
    kind: ReportKind | None = None,
) -> list[ReportOut]:
    links = [
        link
        for link in gw.records.links(RecordKind.REPORT)
        if may(who, Permission.READ_REPORT_LINKS, link.building)
        and (building is None or link.building == building)
        and (kind is None or link.fields["kind"] == kind)
    ]
    gw.audit.append(
        AuditEvent.RECORD_REPORT_LISTED,
        actor=who,
        object="record:report",
        source=source,
        details={
            "count": len(links),
            "building": building,
            "kind": kind,
            "detention_notices": sum(1 for lk in links if lk.fields["kind"] == ReportKind.STUDENT_DETENTION),
        },
    )
    return [
        ReportOut(
            source=lk.source,
            report_id=lk.external_id,
            kind=lk.fields["kind"],
            building=lk.building,
            occurred_at=lk.fields["occurred_at"],
            received=lk.received,
            emergency=lk.emergency_id,
        )
        for lk in links
    ]
