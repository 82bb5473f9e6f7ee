"""The gateway end to end on PostgreSQL: declare and confirm a LOCKDOWN over HTTP, the
officer sees cameras, all-clear takes them away; the CLI verifies the chain in the
database and catches tampering once the triggers are dropped."""

from __future__ import annotations

import subprocess
import sys

import psycopg

LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}


def sightline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60)


async def test_lockdown_on_postgresql(pg_url, site_file, run_gateway, tmp_path) -> None:
    path = site_file({'node = "demo"': f'node = "demo"\ndatabase = "{pg_url}"'})
    gw = await run_gateway(path)
    assert type(gw.gateway.store).__name__ == "PgStore"
    async with gw.client("officer") as officer, gw.client("admin") as admin:
        assert (await officer.get("/api/v1/cameras")).json() == []
        created = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        assert created.status_code == 201, created.text
        emergency = created.json()
        assert emergency["state"] == "pending"
        again = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        assert again.status_code == 409, again.text
        confirmed = await admin.post(f"/api/v1/emergencies/{emergency['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text

        visible = {c["id"] for c in (await officer.get("/api/v1/cameras")).json()}
        assert "hs-front" in visible
        assert "hs-nurse" not in visible and "ms-front" not in visible
        grants = (await officer.get("/api/v1/grants/mine")).json()
        assert len(grants) == 1 and "hs-front" in grants[0]["cameras"]

        ended = await admin.post(f"/api/v1/emergencies/{emergency['id']}/all-clear")
        assert ended.json()["state"] == "all_clear", ended.text
        assert (await officer.get("/api/v1/cameras")).json() == []
        assert (await officer.get("/api/v1/grants/mine")).json() == []
        listed = (await admin.get("/api/v1/emergencies")).json()
        assert [e["id"] for e in listed] == [emergency["id"]]

    assert not (tmp_path / "sightline.db").exists()  # nothing went to SQLite
    with psycopg.connect(pg_url) as conn:
        types = [r[0] for r in conn.execute("SELECT event_type FROM audit_log ORDER BY seq")]
    for expected in (
        "gateway.started",
        "emergency.declared",
        "emergency.activated",
        "grant.started",
        "grant.ended",
        "emergency.all_clear",
    ):
        assert expected in types, f"{expected} missing from the audit log"

    ok = sightline("audit", "verify", "--config", str(path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    target = next(e.seq for e in gw.gateway.audit.entries(limit=10_000) if e.event_type == "grant.started")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        try:
            conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE seq = %s", (target,))
            raise AssertionError("the trigger let an UPDATE through")
        except psycopg.Error as exc:
            assert "append-only" in str(exc)
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_truncate"):
            conn.execute(f"DROP TRIGGER {name} ON audit_log")
        conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE seq = %s", (target,))
    bad = sightline("audit", "verify", "--config", str(path))
    assert bad.returncode != 0
    assert f"seq {target}" in bad.stdout, bad.stdout
