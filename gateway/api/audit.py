"""What auditors read: the log itself, its verification, disclosure records, the monthly
access report and the auditor packet. Every read is itself audited (CJIS 5.4.1.1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.permissions import Permission
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.errors import ApiError
from gateway.identity.guards import require_in_building, requires
from gateway.reports import export
from gateway.reports.audit_packet import (
    all_entries,
    disclosure_record,
    disclosure_view,
    entry_view,
    packet,
    site_names,
    verification_view,
)
from gateway.runtime import Gateway

router = APIRouter(prefix="/api/v1", tags=["audit"])

MAX_PAGE = 1000
MAX_SEQ = 2**63 - 1  # the largest sequence number the stores' 64-bit integers hold


def _read(
    gw: Gateway, who: Actor, source: str | None, event_type: AuditEvent, obj: str, details: dict[str, Any] | None = None
) -> None:
    gw.audit.append(event_type, actor=who, object=obj, source=source, details=details or {})


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: use ISO 8601, e.g. 2026-11-23T14:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@router.get("/audit/events", dependencies=[Depends(requires(Permission.READ_AUDIT))])
def events(
    request: Request,
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    emergency: str | None = None,
    actor: str | None = None,
    camera: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after_seq: int = Query(default=0, ge=0, le=MAX_SEQ),
    limit: int = Query(default=200, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    """Filtered, oldest first, in pages: pass ``next_after_seq`` back as ``after_seq``."""
    filters = {
        k: v
        for k, v in {
            "emergency": emergency,
            "actor": actor,
            "camera": camera,
            "event_type": event_type,
            "since": since,
            "until": until,
        }.items()
        if v
    }
    _read(gw, who, source, AuditEvent.AUDIT_READ, "audit_log", {"filters": filters, "after_seq": after_seq})
    start, end = _when(since, "since"), _when(until, "until")
    grants = {g.id for g in gw.emergencies.grants_of(emergency)} if emergency else set()
    found: list[dict[str, Any]] = []
    names = site_names(gw.config.site)
    last = after_seq
    for e in gw.audit.entries(after_seq=after_seq, limit=100_000):
        last = e.seq
        when = datetime.fromisoformat(e.ts)
        if (
            emergency
            and e.details.get("emergency") != emergency
            and e.details.get("grant") not in grants
            and e.object != f"emergency:{emergency}"
        ):
            continue
        if actor and e.actor_id != actor and e.details.get("viewer") != actor:
            continue
        if camera and e.object != f"camera:{camera}":
            continue
        if event_type and e.event_type != event_type:
            continue
        if (start and when < start) or (end and when > end):
            continue
        found.append(entry_view(e, names))
        if len(found) == limit:
            break
    return {"entries": found, "next_after_seq": last if len(found) == limit else None}


@router.get("/audit/verify", dependencies=[Depends(requires(Permission.READ_AUDIT))])
def verify(gw: GatewayDep, who: ActorDep, source: SourceDep) -> dict[str, Any]:
    result = verification_view(gw.audit.verify())
    gw.audit.append(
        AuditEvent.AUDIT_VERIFIED,
        actor=who,
        object="audit_log",
        source=source,
        outcome="success" if result.get("ok") else "failure",
        details={"checked": result.get("checked"), "first_bad_seq": result.get("first_bad_seq")},
    )
    return result


@router.get("/emergencies/{emergency_id}/disclosure", dependencies=[Depends(requires(Permission.READ_DISCLOSURE))])
def get_disclosure(
    emergency_id: str, request: Request, gw: GatewayDep, who: ActorDep, source: SourceDep
) -> dict[str, Any]:
    require_in_building(request, who, Permission.READ_DISCLOSURE, gw.emergencies.get(emergency_id).building)
    record, _ = disclosure_record(gw.config.site, gw.emergencies, gw.audit, emergency_id)
    gw.audit.append(
        AuditEvent.DISCLOSURE_READ,
        actor=who,
        object=f"emergency:{emergency_id}",
        source=source,
        details={"emergency": emergency_id},
    )
    return disclosure_view(gw.config.site, record)


@router.get(
    "/emergencies/{emergency_id}/export",
    response_class=Response,
    responses={200: {"content": {t: {} for t in export.FORMATS.values()}}},
    dependencies=[Depends(requires(Permission.EXPORT_AUDIT))],
)
def export_packet(
    emergency_id: str,
    request: Request,
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    format: Literal["json", "csv", "pdf"] = "json",
) -> Response:
    data = export.render(packet(gw.config.site, gw.emergencies, gw.audit, emergency_id, who.id), format)
    gw.audit.append(
        AuditEvent.AUDIT_EXPORTED,
        actor=who,
        object=f"emergency:{emergency_id}",
        source=source,
        details={"emergency": emergency_id, "format": format, "bytes": len(data)},
    )
    name = f"sightline-{emergency_id}.{format}"
    return Response(
        data,
        media_type=export.FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.get("/reports/monthly", dependencies=[Depends(requires(Permission.MONTHLY_REPORT))])
def monthly(
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    month: str = Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM"),
) -> dict[str, Any]:
    """Every access in a month, as district agreements ask police access to be reported."""
    _read(gw, who, source, AuditEvent.REPORT_READ, f"report:monthly:{month}", {"month": month})
    year, mon = (int(p) for p in month.split("-"))
    if not 1 <= mon <= 12:
        raise ApiError(422, "invalid_request", "month: use YYYY-MM with a month from 01 to 12")
    accesses, starts = [], {}
    for e in all_entries(gw.audit):
        if e.event_type == AuditEvent.VIEW_STARTED:
            starts[e.details.get("session")] = e
        if e.event_type not in (AuditEvent.VIEW_ENDED, AuditEvent.SNAPSHOT_SERVED):
            continue
        when = datetime.fromisoformat(e.details.get("started") or e.details.get("captured") or e.ts)
        if (when.year, when.month) != (year, mon):
            continue
        grant = gw.emergencies.stored_grant(e.details.get("grant", "")) if e.details.get("grant") else None
        opened = starts.get(e.details.get("session"))
        accesses.append(
            {
                "officer": e.details.get("viewer") or e.actor_id,
                "agency": (opened.actor_agency if opened else e.actor_agency),
                "camera": re.sub(r"^camera:", "", e.object),
                "emergency": grant.emergency_id if grant else None,
                "kind": "video" if e.event_type == AuditEvent.VIEW_ENDED else "snapshot",
                "start": e.details.get("started") or e.details.get("captured"),
                "end": e.details.get("ended") or e.details.get("captured"),
                "seconds": e.details.get("seconds", 0),
            }
        )
    officers = sorted({a["officer"] for a in accesses})
    return {
        "month": month,
        "accesses": accesses,
        "totals": {
            "accesses": len(accesses),
            "officers": len(officers),
            "cameras": len({a["camera"] for a in accesses}),
            "emergencies": len({a["emergency"] for a in accesses if a["emergency"]}),
            "video_seconds": round(sum(a["seconds"] or 0 for a in accesses), 3),
        },
    }
