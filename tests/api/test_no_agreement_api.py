"""An officer of an agency without a camera agreement, during a live emergency: the API
(GET /api/v1/access/mine, WHEP, snapshots) says so in plain words and whom to call."""

from __future__ import annotations

from pathlib import Path

from emergency.audit import AuditEvent
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

NOTICE = (
    "Your agency, County Sheriff's Office, has no camera agreement with Lincoln School District 42, "
    "so the district cannot share its cameras with you during the emergency at Lincoln High School. "
    "To ask for access, call the district safety office, 555-0100."
)


async def test_outsider_is_told_there_is_no_agreement_and_whom_to_call(tmp_path: Path) -> None:
    wg, server, task = await start_web_gateway(tmp_path)
    try:
        outsider, officer = await wg.sign_in("outsider"), await wg.sign_in("officer")
        async with outsider, officer, wg.bearer("admin") as admin:
            before = (await outsider.get("/api/v1/access/mine")).json()
            assert before["access"] == "no_agreement" and "during" not in before["detail"]
            assert (await officer.get("/api/v1/access/mine")).json()["access"] == "none"

            e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
            assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200

            r = await outsider.get("/api/v1/access/mine")
            assert r.status_code == 200
            assert r.json() == {
                "access": "no_agreement",
                "detail": NOTICE,
                "contact": "the district safety office, 555-0100",
            }
            assert (await outsider.get("/api/v1/cameras")).json() == []
            assert (await outsider.get("/api/v1/grants/mine")).json() == []
            whep = await outsider.post(
                "/whep/hs-front", content=b"v=0\r\n", headers={"content-type": "application/sdp"}
            )
            assert whep.status_code == 403 and whep.json() == {"error": "forbidden", "detail": NOTICE}
            shot = await outsider.get("/api/v1/cameras/hs-front/snapshot.jpg")
            assert shot.status_code == 403 and shot.json()["detail"] == NOTICE

            mine = (await officer.get("/api/v1/access/mine")).json()
            assert mine["access"] == "granted" and mine["contact"] is None

        denied = [e for e in wg.gateway.audit.entries(limit=10_000) if e.event_type == AuditEvent.VIEW_DENIED]
        assert [(d.actor_id, d.reason) for d in denied] == [("outsider", "no_agreement")] * 2
    finally:
        await stop(server, task)
