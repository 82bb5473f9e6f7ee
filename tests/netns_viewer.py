"""A WHEP viewer process for tests/netns.py: runs inside the viewer's namespace, decodes
what arrives with aiortc and prints one JSON line at the end (frame arrival times on the
system-wide monotonic clock, so the test can line them up with what it did to the link).

It behaves as a real client does: when no frame has arrived for ``--stall`` seconds it
POSTs a new offer, with backoff (0.5 s doubling to 1 s, plus jitter) between attempts
that fail, and a short connect timeout; the new session replaces the old one. With
``--no-reconnect`` it keeps its first session whatever happens (the gateway's own
recovery alone). ``--vanish-after S`` stops the process after S seconds without closing
anything (a browser killed, a phone out of coverage for good).

    ip netns exec NS python tests/netns_viewer.py BASE_URL CAMERA TOKEN --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class Viewer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.frames: list[float] = []
        self.posts: list[tuple[float, int | str]] = []
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self.started = 0.0
        self.failures = 0
        self.sizes: list[tuple[int, int]] = []

    async def connect(self) -> bool:
        args = self.args
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def _on_track(track) -> None:  # type: ignore[no-untyped-def]
            asyncio.ensure_future(self._read(pc, track))

        await pc.setLocalDescription(await pc.createOffer())
        t = time.monotonic()
        timeout = httpx.Timeout(4.0, connect=1.5)
        try:
            async with httpx.AsyncClient(base_url=args.base_url, timeout=timeout) as client:
                r = await client.post(
                    f"/whep/{args.camera}",
                    params={"stream": args.stream},
                    content=pc.localDescription.sdp,
                    headers={"Authorization": f"Bearer {args.token}", "Content-Type": "application/sdp"},
                )
        except httpx.HTTPError as exc:
            self.posts.append((t, type(exc).__name__))
            await pc.close()
            return False
        self.posts.append((t, r.status_code))
        if r.status_code != 201:
            await pc.close()
            return False
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        old, self.pc = self.pc, pc
        self.location = r.headers.get("location")
        self.started = time.monotonic()
        if old is not None:
            asyncio.ensure_future(old.close())
        return True

    async def _read(self, pc: RTCPeerConnection, track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if pc is self.pc:
                    self.frames.append(time.monotonic())
                    self.failures = 0
                    if not self.sizes or self.sizes[-1][1] != frame.width:
                        self.sizes.append((len(self.frames), frame.width))

    def stalled(self) -> bool:
        last = max(self.frames[-1] if self.frames else 0.0, self.started)
        return time.monotonic() - last > self.args.stall

    async def run(self) -> dict[str, object]:
        args = self.args
        end = time.monotonic() + args.seconds
        vanish = time.monotonic() + args.vanish_after if args.vanish_after else None
        await self.connect()
        while time.monotonic() < end:
            if vanish is not None and time.monotonic() >= vanish:
                print(json.dumps(self.report()), flush=True)
                os._exit(0)  # no DELETE, no DTLS close alert: the peer just goes silent
            await asyncio.sleep(0.05)
            if args.no_reconnect or not self.stalled():
                continue
            if not await self.connect():
                self.failures += 1
                delay = min(1.0, 0.5 * 2 ** (self.failures - 1))
                await asyncio.sleep(delay + random.uniform(0, 0.25))
        report = self.report()
        if self.pc is not None:
            await self.pc.close()
        return report

    def report(self) -> dict[str, object]:
        return {"frames": self.frames, "posts": self.posts, "widths": self.sizes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("camera")
    parser.add_argument("token")
    parser.add_argument("--stream", default="main")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--stall", type=float, default=1.5)
    parser.add_argument("--no-reconnect", action="store_true")
    parser.add_argument("--vanish-after", type=float, default=0)
    args = parser.parse_args()
    report = asyncio.run(Viewer(args).run())
    print(json.dumps(report), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
