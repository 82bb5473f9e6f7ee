"""The auditor packet for one emergency: timeline, who watched what, disclosure record,
and the log's verification — as plain data that every export format renders."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from emergency import disclosure
from emergency.audit import AuditEntry, AuditLog, Names, VerifyResult, describe
from emergency.disclosure import Access, DisclosureRecord
from emergency.service import EmergencyService
from emergency.site import Site

PAGE = 5000


def all_entries(audit: AuditLog) -> Iterator[AuditEntry]:
    after = 0
    while True:
        chunk = audit.entries(after_seq=after, limit=PAGE)
        yield from chunk
        if len(chunk) < PAGE:
            return
        after = chunk[-1].seq


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def site_names(site: Site) -> Names:
    """The names the plain-words timeline uses for people, cameras and agencies."""
    return Names(
        people={a.id: a.name for a in site.accounts.values()},
        cameras={c.id: c.name for c in site.cameras.values()},
        agencies={a.id: a.name for a in site.agencies.values()},
    )


def entry_view(e: AuditEntry, names: Names | None = None) -> dict[str, Any]:
    """The entry's fields and ``text``, the catalogue's plain words for it (what the
    auditor console shows and the exports print)."""
    return {**asdict(e), "text": describe(e, names)}


def disclosure_record(
    site: Site, service: EmergencyService, audit: AuditLog, emergency_id: str
) -> tuple[DisclosureRecord, list[AuditEntry]]:
    emergency = service.get(emergency_id)
    grants = service.grants_of(emergency_id)
    entries = disclosure.emergency_entries(all_entries(audit), emergency_id, {g.id for g in grants})
    return disclosure.build(site, emergency, grants, entries), entries


def disclosure_view(site: Site, record: DisclosureRecord) -> dict[str, Any]:
    e = record.emergency

    def camera_name(cid: str) -> str:
        return site.cameras[cid].name if cid in site.cameras else cid

    guests = {g.account: g for g in record.guests}
    guest_agencies = {g.agency_id: g.label for g in record.guests}

    def officer_name(oid: str) -> str:
        if oid in guests:
            return guests[oid].display
        return site.accounts[oid].name if oid in site.accounts else oid

    def agency_name(aid: str) -> str:
        return site.agencies[aid].name if aid in site.agencies else guest_agencies.get(aid, aid)

    def spans(access: Access) -> list[dict[str, Any]]:
        return [
            {"start": _iso(s.start), "end": _iso(s.end), "seconds": s.seconds, "kind": s.kind} for s in access.spans
        ]

    viewers: dict[str, dict[str, Any]] = {}
    cameras: dict[str, dict[str, Any]] = {}
    for a in record.accesses:
        v = viewers.setdefault(
            a.officer, {"officer": a.officer, "name": officer_name(a.officer), "agency": a.agency, "cameras": []}
        )
        v["cameras"].append({"camera": a.camera, "name": camera_name(a.camera), "spans": spans(a)})
        c = cameras.setdefault(a.camera, {"camera": a.camera, "name": camera_name(a.camera), "viewers": []})
        c["viewers"].append(
            {"officer": a.officer, "name": officer_name(a.officer), "agency": a.agency, "spans": spans(a)}
        )
    notice = record.parent_notice
    return {
        "emergency": {
            "id": e.id,
            "building": e.building,
            "action": str(e.action),
            "state": str(e.state),
            "incident_type": str(e.incident_type),
            "drill": e.drill,
            "declared_by": e.declared_by,
            "declared_at": _iso(e.declared_at),
            "activated_at": _iso(e.activated_at),
            "ended_at": _iso(e.ended_at),
            "trigger": str(e.trigger),
        },
        "threat_basis": record.threat_basis,
        "threat_basis_missing": record.threat_basis is None,
        "agencies": [{"id": a, "name": agency_name(a)} for a in record.agencies],
        "guests": [
            {
                "account": g.account,
                "name": g.name,
                "badge": g.badge,
                "agency": g.agency,
                "shown_as": g.label,
                "admitted_at": _iso(g.admitted_at),
            }
            for g in record.guests
        ],
        "granted_agencies": list(record.granted_agencies),
        "officers": list(record.officers),
        "viewers": list(viewers.values()),
        "cameras": list(cameras.values()),
        "redisclosure_notice": record.redisclosure_notice,
        "parent_notice_draft": None
        if notice is None
        else {
            "due_by": notice.due_by.isoformat(),
            "recipient": notice.recipient,
            "purpose": notice.purpose,
            "text": notice.text,
        },
        "notes": list(record.notes),
        "legal_basis": "34 CFR 99.31(a)(10), 99.36; record per 99.32(a)(5); redisclosure notice per 99.33; "
        "parent notice per 23 IAC 375.60",
    }


def packet(
    site: Site, service: EmergencyService, audit: AuditLog, emergency_id: str, generated_by: str
) -> dict[str, Any]:
    record, entries = disclosure_record(site, service, audit, emergency_id)
    verified = audit.verify()
    site_wide = site_names(site)
    # mutual-aid guests by the name, badge and agency they gave (the disclosure record's guests)
    names = replace(
        site_wide,
        people={**site_wide.people, **{g.account: g.display for g in record.guests}},
        agencies={**site_wide.agencies, **{g.agency_id: g.label for g in record.guests}},
    )
    return {
        "title": f"Sightline auditor packet — emergency {emergency_id}",
        "generated_at": datetime.now(UTC).isoformat(),
        "generated_by": generated_by,
        "disclosure": disclosure_view(site, record),
        "timeline": [entry_view(e, names) for e in entries],
        "verification": verification_view(verified),
    }


def verification_view(result: VerifyResult) -> dict[str, Any]:
    view = {k: v for k, v in vars(result).items() if not k.startswith("_")} if hasattr(result, "__dict__") else {}
    if not view:
        view = asdict(result)
    plain: dict[str, Any] = _jsonable(view)
    return plain


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
