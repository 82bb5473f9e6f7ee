"""Relay load benchmark: one 720p camera, N WHEP viewers that receive RTP but never decode.

Run by hand (not part of the test run), e.g.::

    .venv/bin/python bench/relay.py --viewers 50
    .venv/bin/python bench/relay.py --viewers 200
    .venv/bin/python bench/relay.py --viewers 50 --duration 600     # the RSS-growth run

What it does, in order (all traffic stays on this host; HTTP goes to 127.0.0.1):

1. starts ``bench/rtsp_camera.py`` (gst-rtsp-server, 1280x720, 15 fps, x264 CBR ~1.5 Mbps,
   1 s GOP) under /usr/bin/python3 -- or, with ``--source synthetic``, uses the gateway's
   own synthetic camera at 1280x720 (which encodes inside the gateway, so its CPU is in
   the baseline and the figures are noisier);
2. writes a site file (the sample district, ``hs-front`` pointed at that camera, and
   ``idle_timeout_seconds`` long so the camera stays pulled with no viewer), issues
   tokens (the officer's as after a password + code sign-in) and starts ``sightline serve`` as its own process;
3. declares and confirms a LOCKDOWN as ``admin`` over the HTTP API;
4. opens one warm-up viewer and closes it, so the camera is being pulled; measures the
   gateway's idle CPU over ``--baseline`` seconds (0 viewers, camera pulled);
5. starts ``--viewers`` viewers spread over ``--procs`` load processes, at ``--ramp``
   viewers/s; each records its TTFF; after ``--settle`` seconds measures the gateway's CPU
   over the ``--duration`` window and counts each viewer's complete frames in it;
6. samples the gateway's RSS every ``--rss-interval`` seconds throughout, stops
   everything and prints the table.

The viewers do not decode. In each load process ``aioice.Connection.data_received`` is
wrapped: once a viewer is registered, datagrams that are SRTP media (first byte
0b10xxxxxx, payload type outside the RTCP range) are handed to a frame counter instead of
aiortc's DTLS/SRTP -> RtpPacket -> jitter buffer -> decoder thread path. SRTP leaves the
12-byte RTP header in clear, so the counter reads sequence number, timestamp and marker
without decrypting (the payload is not authenticated -- fine for counting, and the
decode path itself is covered by tests/api/test_slice.py). Everything else (STUN, DTLS, the
gateway's RTCP) still goes through aiortc, so the peer connection is a real one.
A frame (one RTP timestamp) counts as *complete* when its packets arrived with
consecutive sequence numbers, starting right after the previous frame's marker packet
and ending with the marker bit. The viewers send no NACK or PLI.

Figures:
- CPU: the gateway process's utime+stime from /proc/<pid>/stat (all its threads,
  including ingest) over the steady window, as % of one core:
  ``window% = d(cpu seconds) / d(wall seconds) * 100``; the same over the baseline with 0
  viewers gives ``idle%``; ``per viewer = (window% - idle%) / N``.
- TTFF: per viewer, from just before the WHEP POST is sent to the arrival of the first
  complete frame (the camera is already pulled, so the hub's GOP cache serves it).
- Frames lost: per viewer, expected = fps x window seconds, received = complete frames
  whose last packet arrived inside the window; lost = max(0, expected - received).
- RSS: VmRSS of the gateway process; growth is the least-squares slope over the steady
  window times its length, and also last minus first sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SYSTEM_PYTHON = "/usr/bin/python3"
CAMERA_ID = "hs-front"
LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Relay benchmark: simulated armed intruder.",
    "drill": True,
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (time.time(), MB)
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), rss_mb(self.pid)))
            except OSError:
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------------------- viewers


@dataclass
class FrameCounter:
    """Counts complete frames from clear RTP headers (see the module docstring)."""

    t_post: float = 0.0  # perf_counter just before the WHEP POST
    ttff: float | None = None  # seconds
    window: tuple[float, float] = (math.inf, math.inf)  # time.time() bounds
    ssrc: bytes | None = None
    last_seq: int = -1
    cur_ts: int = -1
    cur_ok: bool = False
    prev_marker: bool = True
    packets: int = 0
    complete: int = 0
    incomplete: int = 0
    in_window: int = 0
    broken_in_window: int = 0
    gaps: int = 0
    skipped_in_window: int = 0  # frames never sent: RTP timestamp jumped (hub/source drop)
    frame_ticks: int = 6000  # 90 kHz ticks per frame at the nominal rate

    def packet(self, data: bytes) -> None:
        ssrc = data[8:12]
        if self.ssrc is None:
            self.ssrc = ssrc
        elif ssrc != self.ssrc:
            return  # RTX or a stray stream: not media
        self.packets += 1
        seq = (data[2] << 8) | data[3]
        ts = int.from_bytes(data[4:8], "big")
        marker = data[1] & 0x80
        gap = self.last_seq >= 0 and seq != (self.last_seq + 1) & 0xFFFF
        if gap:
            self.gaps += 1
        self.last_seq = seq
        if ts != self.cur_ts:
            if self.cur_ts >= 0 and not self.prev_marker:
                self._finish(False)  # previous frame never saw its marker
            if self.cur_ts >= 0:
                jump = round(((ts - self.cur_ts) & 0xFFFFFFFF) / self.frame_ticks) - 1
                if 0 < jump < 1000 and self.window[0] <= time.time() < self.window[1]:
                    self.skipped_in_window += jump
            self.cur_ts = ts
            self.cur_ok = self.prev_marker and not gap
        elif gap:
            self.cur_ok = False
        self.prev_marker = bool(marker)
        if marker:
            self._finish(self.cur_ok)

    def _finish(self, ok: bool) -> None:
        now = time.time()
        inside = self.window[0] <= now < self.window[1]
        if ok:
            self.complete += 1
            if self.ttff is None:
                self.ttff = time.perf_counter() - self.t_post
            if inside:
                self.in_window += 1
        else:
            self.incomplete += 1
            if inside:
                self.broken_in_window += 1


def _install_counter_hook(counters: dict) -> None:
    from aioice.ice import Connection

    original = Connection.data_received

    def data_received(self, data: bytes, component: int) -> None:
        counter = counters.get(self)
        if counter is not None and len(data) >= 12 and data[0] & 0xC0 == 0x80 and not 192 <= data[1] <= 223:
            counter.packet(data)
            return
        original(self, data, component)

    Connection.data_received = data_received


async def _load(
    index: int, count: int, base_url: str, token: str, ramp_interval: float, conn, probe_seconds: float
) -> None:
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    counters: dict = {}
    _install_counter_hook(counters)
    viewers: list[tuple[RTCPeerConnection, FrameCounter]] = []
    failures: list[str] = []
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def start_one() -> None:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            counter = FrameCounter()
            viewers.append((pc, counter))
            transceiver = pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            counters[transceiver.receiver.transport.transport._connection] = counter
            counter.t_post = time.perf_counter()
            resp = await client.post(
                f"/whep/{CAMERA_ID}",
                content=pc.localDescription.sdp,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
            )
            if resp.status_code != 201:
                failures.append(f"{resp.status_code} {resp.text[:200]}")
                return
            await pc.setRemoteDescription(RTCSessionDescription(sdp=resp.text, type="answer"))

        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(start_one()))
            await asyncio.sleep(ramp_interval)
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                failures.append(repr(result))
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and any(c.ttff is None for _, c in viewers):
            await asyncio.sleep(0.1)
        conn.send(("ready", len(viewers), failures))

        command, t0, t1 = await loop.run_in_executor(None, conn.recv)
        assert command == "window"
        for _, counter in viewers:
            counter.window = (t0, t1)
        await asyncio.sleep(max(0.0, t1 - time.time()) + 0.5 + probe_seconds)
        conn.send(
            (
                "result",
                [
                    {
                        "ttff": c.ttff,
                        "in_window": c.in_window,
                        "broken_in_window": c.broken_in_window,
                        "complete": c.complete,
                        "incomplete": c.incomplete,
                        "packets": c.packets,
                        "gaps": c.gaps,
                        "skipped_in_window": c.skipped_in_window,
                    }
                    for _, c in viewers
                ],
            )
        )
        await loop.run_in_executor(None, conn.recv)  # "stop"
        counters.clear()
        await asyncio.gather(*(asyncio.wait_for(pc.close(), 5) for pc, _ in viewers), return_exceptions=True)


def load_process(
    index: int, count: int, base_url: str, token: str, ramp_interval: float, conn, probe_seconds: float
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_load(index, count, base_url, token, ramp_interval, conn, probe_seconds))


# ---------------------------------------------------------------------------- setup


class Proc:
    def __init__(self, argv: list[str], log: Path, ready: str | None = None, **kw) -> None:
        self.log = log
        self._fh = open(log, "w")
        self.p = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT, **kw)
        if ready:
            deadline = time.time() + 20
            while ready not in log.read_text():
                if self.p.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{argv[1]} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._fh.close()


def write_site(work: Path, camera_url: str) -> Path:
    """The sample district with ``hs-front`` as the building's only camera, pointed at the
    bench camera (main stream only, so the LOCKDOWN preloads exactly that ingest). The
    other synthetic cameras would encode inside the gateway and swamp the idle baseline."""
    from emergency.sample import sample_site_data
    from gateway.cli.demo import GATEWAY, HEADER
    from gateway.cli.toml_writer import to_toml

    data = sample_site_data()
    front = next(c for c in data["cameras"] if c["id"] == "hs-front")
    front["main"] = camera_url
    front.pop("sub", None)
    data["cameras"] = [c for c in data["cameras"] if c is front or c["building"] != front["building"]]
    gateway = {**GATEWAY, "idle_timeout_seconds": 86400}
    path = work / "site.toml"
    path.write_text(HEADER + to_toml({"gateway": gateway, **data}))
    return path


def sightline(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(f"sightline {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def person_token(site: Path, user: str, ttl: int = 86400) -> str:
    """A token as a person signed in with password and authenticator code holds (the
    bench site has no logins), its sign-in recorded in the site's database."""
    from gateway.config import load_config
    from gateway.runtime import open_store, token_authority

    config = load_config(site)
    store = open_store(config)
    try:
        return token_authority(config, store).issue(user, ttl=ttl, amr=("pwd", "otp", "mfa"))[0]
    finally:
        store.close()


def wait_health(base: str, proc: Proc) -> None:
    import httpx

    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError("gateway exited:\n" + proc.log.read_text()[-3000:])
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gateway not healthy in 30 s")


def declare_lockdown(base: str, admin_token: str) -> str:
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=15) as c:
        r = c.post("/api/v1/emergencies", json=LOCKDOWN)
        r.raise_for_status()
        eid = r.json()["id"]
        r = c.post(f"/api/v1/emergencies/{eid}/confirm")
        r.raise_for_status()
        assert r.json()["state"] == "active", r.text
        return eid


async def join_once(base: str, token: str, frames: int) -> FrameCounter:
    """One viewer until ``frames`` complete frames, then DELETE (the hub keeps pulling)."""
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    counters: dict = {}
    _install_counter_hook(counters)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter()
    tr = pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    counters[tr.receiver.transport.transport._connection] = counter
    counter.t_post = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        r = await client.post(
            f"/whep/{CAMERA_ID}",
            content=pc.localDescription.sdp,
            headers={**headers, "Content-Type": "application/sdp"},
        )
        if r.status_code != 201:
            raise RuntimeError(f"warm-up WHEP failed: {r.status_code} {r.text}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        deadline = time.perf_counter() + 30
        while counter.complete < frames and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        await client.delete(r.headers["location"], headers=headers)
    await pc.close()
    return counter


async def warm_up(base: str, token: str) -> None:
    counter = await join_once(base, token, 15)
    if counter.complete == 0:
        raise RuntimeError("warm-up viewer got no frame in 30 s (camera or gateway broken)")
    print(
        f"warm-up viewer: cold TTFF {counter.ttff * 1000:.0f} ms (includes RTSP connect), "
        f"{counter.complete} frames, {counter.packets} packets",
        flush=True,
    )


async def probe_joins(base: str, token: str, count: int) -> list[float]:
    """Sequential extra viewers joining the already-pulled camera under the steady load."""
    out = []
    for _ in range(count):
        counter = await join_once(base, token, 1)
        if counter.ttff is not None:
            out.append(counter.ttff * 1000)
        await asyncio.sleep(0.3)
    return out


# ---------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


@dataclass
class Report:
    args: argparse.Namespace
    idle_pct: float = 0.0
    window_pct: float = 0.0
    window_s: float = 0.0
    viewers: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    probes: list[float] = field(default_factory=list)  # ms

    def figures(self) -> dict:
        n = self.args.viewers
        expected = round(self.args.fps * self.window_s)
        got = [v["in_window"] for v in self.viewers]
        lost = [max(0, expected - g) for g in got]
        ttff = [v["ttff"] * 1000 for v in self.viewers if v["ttff"] is not None]
        t0, t1 = self.marks["window_start"], self.marks["window_end"]
        steady = [(t, m) for t, m in self.rss if t0 <= t <= t1]
        return {
            "viewers": n,
            "connected": sum(1 for v in self.viewers if v["ttff"] is not None),
            "window_s": round(self.window_s, 1),
            "cpu_idle_pct": round(self.idle_pct, 2),
            "cpu_window_pct": round(self.window_pct, 2),
            "cpu_per_viewer_pct": round((self.window_pct - self.idle_pct) / n, 4) if n else None,
            "ttff_ms_p50": round(pct(ttff, 0.5)),
            "ttff_ms_p95": round(pct(ttff, 0.95)),
            "ttff_ms_max": round(max(ttff)) if ttff else None,
            "frames_expected_per_viewer": expected,
            "frames_received_min": min(got, default=0),
            "frames_received_median": statistics.median(got) if got else 0,
            "frames_received_max": max(got, default=0),
            "frames_lost_min": min(lost, default=0),
            "frames_lost_median": statistics.median(lost) if lost else 0,
            "frames_lost_max": max(lost, default=0),
            "frames_lost_total": sum(lost),
            "frames_expected_total": expected * n,
            "incomplete_frames_total": sum(v["broken_in_window"] for v in self.viewers),
            "rtp_gaps_total": sum(v["gaps"] for v in self.viewers),
            "skipped_frames_total": sum(v.get("skipped_in_window", 0) for v in self.viewers),
            "probe_ttff_ms_p50": round(pct(self.probes, 0.5)) if self.probes else None,
            "probe_ttff_ms_p95": round(pct(self.probes, 0.95)) if self.probes else None,
            "probe_ttff_ms_max": round(max(self.probes)) if self.probes else None,
            "rss_mb_start": round(steady[0][1], 1) if steady else None,
            "rss_mb_end": round(steady[-1][1], 1) if steady else None,
            "rss_growth_mb_last_minus_first": round(steady[-1][1] - steady[0][1], 2) if steady else None,
            "rss_growth_mb_fit": round(slope(steady) * (t1 - t0), 2) if steady else None,
            "failures": len(self.failures),
        }

    def print(self) -> dict:
        f = self.figures()
        a = self.args
        print()
        print(
            f"Sightline relay benchmark: {a.viewers} non-decoding viewers of one {a.width}x{a.height} "
            f"{a.fps} fps ~{a.kbps / 1000:g} Mbps H.264 camera ({a.source}), {a.procs} load processes"
        )
        print("-" * 78)
        rows = [
            (
                "viewers connected",
                f"{f['connected']} / {a.viewers}" + (f"  ({f['failures']} failures)" if f["failures"] else ""),
            ),
            ("steady window", f"{f['window_s']} s (after ramp + {a.settle:g} s settle)"),
            ("gateway CPU, 0 viewers (camera pulled)", f"{f['cpu_idle_pct']:.2f} % of one core"),
            ("gateway CPU, window", f"{f['cpu_window_pct']:.2f} % of one core"),
            ("CPU per viewer-stream", f"{f['cpu_per_viewer_pct']:.3f} % of one core   (target <= 0.18)"),
            (
                "TTFF, joins at steady load p50/p95/max",
                f"{f['probe_ttff_ms_p50']} / {f['probe_ttff_ms_p95']} / "
                f"{f['probe_ttff_ms_max']} ms  ({len(self.probes)} sequential probes;"
                " target p50 <= 250)",
            ),
            (
                "TTFF, during ramp p50/p95/max",
                f"{f['ttff_ms_p50']} / {f['ttff_ms_p95']} / {f['ttff_ms_max']} ms  ({a.ramp:g} joins/s)",
            ),
            ("frames expected per viewer", f"{f['frames_expected_per_viewer']}  ({a.fps} fps x window)"),
            (
                "frames received min/median/max",
                f"{f['frames_received_min']} / {f['frames_received_median']} / {f['frames_received_max']}",
            ),
            (
                "frames lost min/median/max",
                f"{f['frames_lost_min']} / {f['frames_lost_median']} / {f['frames_lost_max']}",
            ),
            (
                "frames lost total",
                f"{f['frames_lost_total']} of {f['frames_expected_total']}"
                f"  (never sent {f['skipped_frames_total']}, incomplete "
                f"{f['incomplete_frames_total']}, RTP seq gaps {f['rtp_gaps_total']})",
            ),
            ("gateway RSS start -> end", f"{f['rss_mb_start']} -> {f['rss_mb_end']} MB"),
            (
                "RSS growth (fit / last-first)",
                f"{f['rss_growth_mb_fit']} / {f['rss_growth_mb_last_minus_first']} MB "
                f"over {f['window_s']} s   (target <= 5 MB / 600 s, 50 viewers)",
            ),
        ]
        for k, v in rows:
            print(f"{k:<40} {v}")
        start = self.rss[0][0] if self.rss else 0
        series = " ".join(f"{t - start:.0f}s:{m:.1f}" for t, m in self.rss)
        print(f"{'RSS series (s since start: MB)':<40} {series}")
        hist: dict[int, int] = {}
        for v in self.viewers:
            hist[v["in_window"]] = hist.get(v["in_window"], 0) + 1
        print(f"{'frames per viewer (frames: viewers)':<40} " + ", ".join(f"{k}: {n}" for k, n in sorted(hist.items())))
        if self.failures:
            print("first failures:", *self.failures[:5], sep="\n  ")
        return f


# ---------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> Report:
    work = Path(tempfile.mkdtemp(prefix="sightline-bench-"))
    report = Report(args)
    procs: list[Proc] = []
    loaders: list[tuple[mp.Process, object]] = []
    sampler = None
    try:
        if args.source == "rtsp":
            cam_port = free_port()
            procs.append(
                Proc(
                    [
                        SYSTEM_PYTHON,
                        str(ROOT / "bench" / "rtsp_camera.py"),
                        "--port",
                        str(cam_port),
                        "--width",
                        str(args.width),
                        "--height",
                        str(args.height),
                        "--fps",
                        str(args.fps),
                        "--kbps",
                        str(args.kbps),
                    ],
                    work / "camera.log",
                    ready="READY",
                )
            )
            camera_url = f"rtsp://127.0.0.1:{cam_port}/cam"
        else:
            camera_url = f"synthetic://bench?w={args.width}&h={args.height}&fps={args.fps}"
        site = write_site(work, camera_url)
        officer = person_token(site, "officer")  # `sightline token` tokens never open video
        admin = sightline("token", "--config", str(site), "--user", "admin", "--ttl", "86400")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        gw = Proc(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(site),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            work / "gateway.log",
            cwd=ROOT,
            env=env,
        )
        procs.append(gw)
        wait_health(base, gw)
        pid = gw.p.pid
        print(f"gateway pid {pid} on {base}; work dir {work}", flush=True)
        eid = declare_lockdown(base, admin)
        print(f"LOCKDOWN {eid} active", flush=True)
        sampler = RssSampler(pid, args.rss_interval)
        sampler.start()
        asyncio.run(warm_up(base, officer))

        time.sleep(2)
        c0, w0 = cpu_seconds(pid), time.time()
        time.sleep(args.baseline)
        c1, w1 = cpu_seconds(pid), time.time()
        report.idle_pct = (c1 - c0) / (w1 - w0) * 100
        print(f"baseline: {report.idle_pct:.2f} % of one core over {w1 - w0:.1f} s with 0 viewers", flush=True)

        ctx = mp.get_context("spawn")
        per = [args.viewers // args.procs + (1 if i < args.viewers % args.procs else 0) for i in range(args.procs)]
        ramp_interval = args.procs / args.ramp
        for i, count in enumerate(per):
            if not count:
                continue
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=load_process,
                args=(i, count, base, officer, ramp_interval, child, args.probes * 2.0 + 5),
                daemon=True,
            )
            p.start()
            loaders.append((p, parent))
        report.marks["ramp_start"] = time.time()
        for _p, pipe in loaders:
            if not pipe.poll(args.viewers / args.ramp + 90):
                raise RuntimeError("a load process did not get ready")
            _, n, failures = pipe.recv()
            report.failures += failures
        report.marks["ready"] = time.time()
        print(
            f"{args.viewers} viewers started in {report.marks['ready'] - report.marks['ramp_start']:.1f} s "
            f"({len(report.failures)} failures)",
            flush=True,
        )

        t0 = time.time() + args.settle
        t1 = t0 + args.duration
        for _, pipe in loaders:
            pipe.send(("window", t0, t1))
        time.sleep(max(0.0, t0 - time.time()))
        c0, w0 = cpu_seconds(pid), time.time()
        report.marks["window_start"] = w0
        while time.time() < t1:
            time.sleep(min(10.0, max(0.0, t1 - time.time())))
            if args.duration >= 60:
                print(f"  ... {time.time() - w0:.0f}/{args.duration:.0f} s, RSS {rss_mb(pid):.1f} MB", flush=True)
        c1, w1 = cpu_seconds(pid), time.time()
        report.marks["window_end"] = w1
        report.window_pct = (c1 - c0) / (w1 - w0) * 100
        report.window_s = w1 - w0
        if args.probes:
            report.probes = asyncio.run(probe_joins(base, officer, args.probes))
        for _, pipe in loaders:
            if not pipe.poll(120 + args.probes * 3):
                raise RuntimeError("a load process did not report")
            _, viewers = pipe.recv()
            report.viewers += viewers
        sampler.stop()
        report.rss = list(sampler.samples)
        for _, pipe in loaders:
            pipe.send("stop")
        for p, _ in loaders:
            p.join(20)
    finally:
        if sampler:
            sampler.stop()
        for p, _ in loaders:
            if p.is_alive():
                p.terminate()
        for proc in reversed(procs):
            proc.stop()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="steady window, seconds (600 for RSS growth)")
    parser.add_argument("--procs", type=int, default=0, help="load processes (default: 1 per 40 viewers, min 2)")
    parser.add_argument("--ramp", type=float, default=20.0, help="viewers started per second")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between ramp and window")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds of 0-viewer CPU measurement")
    parser.add_argument("--rss-interval", type=float, default=5.0)
    parser.add_argument(
        "--probes", type=int, default=10, help="sequential extra viewers after the window, for TTFF under steady load"
    )
    parser.add_argument("--source", choices=("rtsp", "synthetic"), default="rtsp")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--kbps", type=int, default=1500, help="camera bitrate (rtsp source)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (site file, logs)")
    args = parser.parse_args()
    if args.procs <= 0:
        args.procs = max(2, math.ceil(args.viewers / 40))
    args.procs = min(args.procs, max(1, args.viewers))
    report = run(args)
    figures = report.print()
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "figures": figures, "rss": report.rss, "viewers": report.viewers}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
