"""A real WHEP viewer built on aiortc: offers recvonly video, decodes what arrives."""

from __future__ import annotations

import asyncio
import time

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class WhepViewer:
    def __init__(
        self,
        base_url: str,
        camera_id: str,
        token: str,
        stream: str = "main",
        config: RTCConfiguration | None = None,
        *,
        cookies: dict[str, str] | None = None,
    ) -> None:
        """``cookies``: a signed-in page's session cookie instead of the bearer token."""
        self.base_url = base_url
        self.cookies = cookies
        self.camera_id = camera_id
        self.token = token
        self.stream = stream
        self.pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
        self.frame_times: list[float] = []
        self.frames: list = []
        self.location: str | None = None
        self.response: httpx.Response | None = None
        self._reader: asyncio.Task | None = None
        self.keep_frames = 0

    async def start(self) -> httpx.Response:
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def _on_track(track) -> None:
            self._reader = asyncio.create_task(self._read(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        auth = {"X-Requested-With": "sightline"} if self.cookies else {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=15, cookies=self.cookies) as client:
            self.response = await client.post(
                f"/whep/{self.camera_id}",
                params={"stream": self.stream},
                content=self.pc.localDescription.sdp,
                headers={**auth, "Content-Type": "application/sdp"},
            )
        if self.response.status_code == 201:
            self.location = self.response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.response.text, type="answer"))
        return self.response

    async def _read(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frame_times.append(time.monotonic())
                if len(self.frames) < self.keep_frames:
                    self.frames.append(frame)
        except MediaStreamError:
            return

    def frames_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.frame_times if start <= t < end)

    async def wait_frames(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frame_times) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.frame_times)} of {count} frames within {timeout} s")
            await asyncio.sleep(0.05)

    async def delete(self) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            return await client.delete(self.location, headers={"Authorization": f"Bearer {self.token}"})

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        await self.pc.close()
