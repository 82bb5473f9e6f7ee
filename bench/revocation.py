"""Revocation latency: from an administrator's revocation on node A to the last video frame
of the revoked officer on node B.

Run by hand (not part of the test run)::

    .venv/bin/python bench/revocation.py --rounds 20
    .venv/bin/python bench/revocation.py --rounds 20 --database postgresql://user@host/db

Two ``sightline serve`` processes share one site file and database (SQLite in the work
dir by default, which two processes on one host can share; PostgreSQL with
``--database``). Each round: a token for the officer as after a password + code sign-in,
a real aiortc WHEP viewer of ``hs-front`` on node B that waits for frames, then
``POST /api/v1/people/officer/revoke`` as the administrator on node A. Measured from the
revocation's answer: the last frame received (``cut``) and the peer connection closing
(``closed``). Target: ``cut`` at most 1 s on every round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.relay import free_port, person_token, sightline  # noqa: E402


def write_site(work: Path, database: str | None) -> Path:
    from gateway.cli.demo import ensure_demo_site

    path = ensure_demo_site(work)
    if database:
        path.write_text(path.read_text().replace('node = "demo"', f'node = "demo"\ndatabase = "{database}"', 1))
    return path


def serve(site: Path, port: int, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(site), "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_health(base: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=1) as c:
        for _ in range(600):
            try:
                if (await c.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not start")


async def one_round(site: Path, a: str, b: str, admin: str) -> tuple[float, float]:
    import httpx

    from tests.whep_client import WhepViewer

    viewer = WhepViewer(b, "hs-front", person_token(site, "officer", ttl=600), stream="sub")
    try:
        response = await viewer.start()
        assert response.status_code == 201, response.text
        await viewer.wait_frames(10, timeout=20)
        async with httpx.AsyncClient(base_url=a, headers={"Authorization": f"Bearer {admin}"}, timeout=15) as c:
            r = await c.post("/api/v1/people/officer/revoke", json={"reason": "bench"})
        revoked = time.monotonic()
        assert r.status_code == 200, r.text
        while viewer.pc.connectionState not in ("closed", "failed"):
            if time.monotonic() - revoked > 10:
                raise AssertionError("video still flowing 10 s after the revocation")
            await asyncio.sleep(0.01)
        closed = time.monotonic() - revoked
        await asyncio.sleep(0.5)
        return viewer.frame_times[-1] - revoked, closed
    finally:
        await viewer.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database", help="postgresql://... (default: SQLite in the work dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sightline-revocation-") as tmp:
        work = Path(tmp)
        site = write_site(work, args.database)
        sightline("db", "upgrade", "--config", str(site))
        ports = free_port(), free_port()
        procs = [serve(site, p, work / f"serve-{i}.log") for i, p in enumerate(ports)]
        try:
            a, b = (f"http://127.0.0.1:{p}" for p in ports)
            await wait_health(a)
            await wait_health(b)
            admin = sightline("token", "--config", str(site), "--user", "admin", "--ttl", "3600")
            import httpx

            async with httpx.AsyncClient(base_url=a, headers={"Authorization": f"Bearer {admin}"}, timeout=15) as c:
                e = (await c.post("/api/v1/emergencies", json={
                    "building": "lincoln-hs", "action": "LOCKDOWN", "incident_type": "armed_intruder", "drill": True,
                })).json()  # fmt: skip
                await c.post(f"/api/v1/emergencies/{e['id']}/confirm")
            cuts, closes = [], []
            for i in range(args.rounds):
                cut, closed = await one_round(site, a, b, admin)
                cuts.append(cut)
                closes.append(closed)
                print(f"round {i + 1:>3}: last frame {cut * 1000:7.1f} ms, closed {closed * 1000:7.1f} ms", flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)

    def row(name: str, xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=20, method="inclusive") if len(xs) > 1 else xs * 19
        return f"{name:<11} p50 {statistics.median(xs) * 1000:7.1f} ms  p95 {q[18] * 1000:7.1f} ms  max {max(xs) * 1000:7.1f} ms"

    print(f"{args.rounds} rounds, revocation on node A -> officer's video on node B")
    print(row("last frame", cuts))
    print(row("closed", closes))
    return 0 if max(cuts) <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
