"""A scripted incident: declare, two officers view three cameras (one by snapshot), an
extension, all-clear. The disclosure record names exactly those officers, cameras and
time spans; the exports render; every read is audited."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import datetime

import pypdf

from emergency.audit import AuditEntry, describe
from gateway.reports.audit_packet import site_names
from tests.api.test_activation import declare
from tests.whep_client import WhepViewer

SECOND_OFFICER = """
[[accounts]]
id = "officer2"
name = "Officer Sam Lee"
role = "officer"
agency = "village-pd"
"""


async def test_disclosure_record_names_exactly_who_saw_what(site_file, run_gateway) -> None:
    path = site_file()
    path.write_text(path.read_text() + SECOND_OFFICER)
    gw = await run_gateway(path)
    async with gw.client("admin") as admin:
        eid = await declare(admin, "LOCKDOWN")
        views = [
            WhepViewer(gw.base_url, "hs-front", gw.token("officer")),
            WhepViewer(gw.base_url, "hs-hall-a", gw.token("officer")),
            WhepViewer(gw.base_url, "hs-front", gw.token("officer2")),
        ]
        for v in views:
            assert (await v.start()).status_code == 201
        await asyncio.gather(*(v.wait_frames(3, 10) for v in views))
        async with gw.client("officer2") as officer2:
            assert (await officer2.get("/api/v1/cameras/hs-gym/snapshot.jpg")).status_code == 200
        assert (await views[1].delete()).status_code == 204
        extended = await admin.post(f"/api/v1/emergencies/{eid}/extend", json={"minutes": 30, "reason": "search"})
        assert extended.status_code == 200
        await admin.post(f"/api/v1/emergencies/{eid}/all-clear")
        await asyncio.gather(*(v.close() for v in views))
        await admin.patch(f"/api/v1/emergencies/{eid}", json={"threat_basis": "Man with a rifle at the east door"})

    sessions = {
        (e.details["viewer"], e.object): e
        for e in gw.gateway.audit.entries(limit=10_000)
        if e.event_type == "view.ended"
    }
    names = site_names(gw.gateway.config.site)
    async with gw.client("auditor") as auditor, gw.client("officer") as officer:
        assert (await officer.get(f"/api/v1/emergencies/{eid}/disclosure")).status_code == 403
        record = (await auditor.get(f"/api/v1/emergencies/{eid}/disclosure")).json()
        assert record["threat_basis"] == "Man with a rifle at the east door"
        assert [a["id"] for a in record["agencies"]] == ["village-pd"]
        assert record["officers"] == ["officer", "officer2"]
        watched = {(v["officer"], c["camera"]): c["spans"] for v in record["viewers"] for c in v["cameras"]}
        assert set(watched) == {
            ("officer", "hs-front"),
            ("officer", "hs-hall-a"),
            ("officer2", "hs-front"),
            ("officer2", "hs-gym"),
        }
        for (officer_id, camera), spans in watched.items():
            if camera == "hs-gym":
                assert [s["kind"] for s in spans] == ["snapshot"]
                continue
            ended = sessions[(officer_id, f"camera:{camera}")]
            assert spans == [
                {
                    "start": ended.details["started"],
                    "end": ended.details["ended"],
                    "seconds": ended.details["seconds"],
                    "kind": "video",
                }
            ]
        assert {c["camera"] for c in record["cameras"]} == {"hs-front", "hs-hall-a", "hs-gym"}
        notice = record["parent_notice_draft"]
        assert notice["recipient"] == "Village Police Department"
        assert datetime.fromisoformat(notice["due_by"]).weekday() < 5
        assert "99.33" in record["legal_basis"] and "FERPA" in record["redisclosure_notice"]

        pdf = await auditor.get(f"/api/v1/emergencies/{eid}/export?format=pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
        for expected in (
            "Officer Dana Reyes",
            "Officer Sam Lee",
            "HS front entrance",
            "HS hallway A",
            "HS gym",
            "Man with a rifle at the east door",
            "Village Police Department",
            "INTACT",
            "emergency.extended",
            "declared ALL CLEAR: all video sharing ended",
        ):
            assert expected in text, expected
        rows = list(
            csv.DictReader(io.StringIO((await auditor.get(f"/api/v1/emergencies/{eid}/export?format=csv")).text))
        )
        assert {(r["officer"], r["camera"]) for r in rows if r["section"] == "access"} == set(watched)
        # the timeline in the catalogue's plain words (emergency/audit/events.py), as the console shows it
        cleared = next(r for r in rows if r["section"] == "event" and r["event_type"] == "emergency.all_clear")
        assert cleared["text"].endswith(" declared ALL CLEAR: all video sharing ended")
        packet = (await auditor.get(f"/api/v1/emergencies/{eid}/export?format=json")).json()
        assert packet["verification"]["ok"] is True
        assert any(t["event_type"] == "emergency.all_clear" for t in packet["timeline"])
        assert all(
            t["text"] == describe(AuditEntry(**{k: v for k, v in t.items() if k != "text"}), names)
            for t in packet["timeline"]
        )

        month = datetime.now().strftime("%Y-%m")
        report = (await auditor.get(f"/api/v1/reports/monthly?month={month}")).json()
        assert report["totals"]["officers"] == 2 and report["totals"]["accesses"] == 4
        page = (await auditor.get("/api/v1/audit/events", params={"emergency": eid, "actor": "officer2"})).json()
        assert {e["event_type"] for e in page["entries"]} >= {"view.started", "view.ended", "snapshot.served"}
        texts = {e["text"] for e in page["entries"]}
        assert {
            "Officer Sam Lee (officer2) started watching HS front entrance (hs-front)",
            "Officer Sam Lee (officer2) was shown a still image from HS gym (hs-gym)",
        } <= texts, texts
        assert (await officer.get("/api/v1/audit/events")).status_code == 403

    reads = [e.event_type for e in gw.gateway.audit.entries(limit=100_000) if e.actor_id == "auditor"]
    assert {"disclosure.read", "audit.exported", "report.read", "audit.read"} <= set(reads)

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "audit",
            "export",
            "--config",
            str(path),
            "--emergency",
            eid,
            "--format",
            "json",
            "--output",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["disclosure"]["officers"] == ["officer", "officer2"]
