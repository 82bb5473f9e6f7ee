"""Rendering the auditor packet as JSON, CSV or PDF."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fpdf import FPDF

FORMATS = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


def render(packet: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(packet, indent=2, sort_keys=False, default=str).encode()
    if fmt == "csv":
        return _csv(packet)
    if fmt == "pdf":
        return _pdf(packet)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def access_rows(disclosure: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for viewer in disclosure["viewers"]:
        for cam in viewer["cameras"]:
            for span in cam["spans"]:
                rows.append(
                    {
                        "officer": viewer["officer"],
                        "officer_name": viewer["name"],
                        "agency": viewer["agency"],
                        "camera": cam["camera"],
                        "camera_name": cam["name"],
                        "kind": span["kind"],
                        "start": span["start"],
                        "end": span["end"],
                        "seconds": span["seconds"],
                    }
                )
    return rows


def _csv(packet: dict[str, Any]) -> bytes:
    """One file, two sections told apart by the first column: ``access`` rows (who watched
    which camera when) and ``event`` rows (the audit timeline, with the catalogue's plain
    words for each entry in ``text``)."""
    out = io.StringIO()
    columns = [
        "section",
        "officer",
        "officer_name",
        "agency",
        "camera",
        "camera_name",
        "kind",
        "start",
        "end",
        "seconds",
        "seq",
        "ts",
        "event_type",
        "text",
        "actor_id",
        "actor_role",
        "actor_agency",
        "object",
        "outcome",
        "source",
        "reason",
        "details",
        "hash",
    ]
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    for row in access_rows(packet["disclosure"]):
        writer.writerow({"section": "access", **row})
    for e in packet["timeline"]:
        writer.writerow({"section": "event", **e, "details": json.dumps(e["details"], sort_keys=True)})
    return out.getvalue().encode()


def _latin1(text: Any) -> str:
    """The PDF core fonts are Latin-1; anything else is shown as '?' rather than failing."""
    return (
        str(text if text is not None else "-")
        .replace("\u2014", "-")
        .replace("\u2013", "-")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


def _pdf(packet: dict[str, Any]) -> bytes:
    d = packet["disclosure"]
    e = d["emergency"]
    pdf = FPDF(format="Letter")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 13)
        pdf.multi_cell(width, 7, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def line(text: Any) -> None:
        pdf.multi_cell(width, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    pdf.set_font("Helvetica", "B", 16)
    line(f"Auditor packet: emergency {e['id']}")
    pdf.set_font("Helvetica", "", 10)
    line(f"Generated {packet['generated_at']} by {packet['generated_by']}")
    v = packet["verification"]
    line(
        "Audit log verification: "
        + ("INTACT" if v.get("ok") else f"FAILED at seq {v.get('first_bad_seq')}: {v.get('problem')}")
        + f" ({v.get('checked')} entries checked)"
    )

    heading("Emergency")
    for label, key in (
        ("Building", "building"),
        ("Action", "action"),
        ("Incident", "incident_type"),
        ("State", "state"),
        ("Trigger", "trigger"),
        ("Declared by", "declared_by"),
        ("Declared", "declared_at"),
        ("Activated", "activated_at"),
        ("Ended", "ended_at"),
    ):
        line(f"{label}: {e.get(key)}")
    if e.get("drill"):
        line("DRILL - not a real emergency")

    heading("Disclosure record (34 CFR 99.32(a)(5))")
    line("Threat that formed the basis: " + (d["threat_basis"] or "NOT RECORDED - an administrator must fill it in"))
    line("Parties who received video: " + (", ".join(a["name"] for a in d["agencies"]) or "none"))
    guests = d.get("guests") or []
    line(
        "Mutual-aid guests given access: "
        + (", ".join(f"{g['name']} (badge {g['badge']}, {g['shown_as']})" for g in guests) or "none")
    )
    line("Officers who viewed: " + (", ".join(f"{v['name']} ({v['officer']})" for v in d["viewers"]) or "none"))
    for note in d["notes"]:
        line(f"Note: {note}")

    heading("Who watched what")
    rows = access_rows(d)
    if not rows:
        line("No video was viewed.")
    for r in rows:
        line(
            f"{r['officer_name']} ({r['agency']}) - {r['camera_name']} [{r['camera']}] - {r['kind']} "
            f"{r['start']} to {r['end'] or 'still open'} ({r['seconds'] if r['seconds'] is not None else '-'} s)"
        )

    heading("Redisclosure notice shown to viewers (34 CFR 99.33)")
    line(d["redisclosure_notice"])
    notice = d["parent_notice_draft"]
    heading("Parent notice draft (23 IAC 375.60)")
    if notice:
        line(f"Send by: {notice['due_by']}    Recipient: {notice['recipient']}")
        line(f"Purpose: {notice['purpose']}")
        line(notice["text"])
    else:
        line("No disclosure took place; no notice is due.")

    heading("Timeline (audit log)")
    pdf.set_font("Helvetica", "", 8)
    for t in packet["timeline"]:
        line(f"#{t['seq']} {t['ts']} {t['text']}")
        line(
            f"      {t['event_type']} by {t['actor_id']} ({t['actor_role'] or '-'}) on "
            f"{t['object']}: {t['outcome']}" + (f" - {t['reason']}" if t.get("reason") else "")
        )
    pdf.set_font("Helvetica", "", 10)

    heading("Verification and checkpoint signatures")
    for key, value in v.items():
        line(f"{key}: {json.dumps(value, default=str) if not isinstance(value, str) else value}")
    return bytes(pdf.output())
