"""JPEG snapshots from a hub's latest keyframe, for viewers whose link cannot carry video.

Decoding is the one per-camera cost a snapshot adds, so it happens at most once per
``min_interval`` per stream however many viewers ask; everyone else gets the cached JPEG.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import cv2

from .units import AccessUnit

if TYPE_CHECKING:
    from .hub import Hub
    from .sendpath import SharedUnit

JPEG_QUALITY = 80


class SnapshotUnavailable(Exception):
    """No keyframe arrived in time (camera down or still connecting)."""


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    captured: float  # wall-clock (time.time()) when the keyframe reached the hub
    width: int
    height: int


def decode_keyframe(unit: AccessUnit | SharedUnit) -> tuple[bytes, int, int]:
    """Decode one IDR access unit (SPS/PPS in front) with a fresh decoder and encode JPEG."""
    codec = av.CodecContext.create("h264", "r")
    frames = list(codec.decode(av.Packet(unit.data)))
    frames += list(codec.decode(None))
    if not frames:
        raise SnapshotUnavailable("the keyframe could not be decoded")
    image = frames[0].to_ndarray(format="bgr24")
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SnapshotUnavailable("JPEG encoding failed")
    return jpeg.tobytes(), image.shape[1], image.shape[0]


class Snapshotter:
    def __init__(self, min_interval: float = 1.0) -> None:
        self._min_interval = min_interval
        self._cached: Snapshot | None = None
        self._decoded_at = 0.0
        self._lock = asyncio.Lock()
        self.decodes = 0

    async def get(self, hub: Hub, timeout: float) -> Snapshot:
        async with self._lock:
            if self._cached and time.monotonic() - self._decoded_at < self._min_interval:
                return self._cached
            unit, captured = await self._keyframe(hub, timeout)
            jpeg, width, height = await asyncio.to_thread(decode_keyframe, unit)
            self.decodes += 1
            self._decoded_at = time.monotonic()
            self._cached = Snapshot(jpeg, captured, width, height)
            return self._cached

    async def _keyframe(self, hub: Hub, timeout: float) -> tuple[SharedUnit, float]:
        latest = hub.latest_keyframe()
        if latest is not None:
            return latest
        track = hub.open_track()  # wakes an idle camera; it idles out again afterwards
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await track.recv()
                    latest = hub.latest_keyframe()
                    if latest is not None:
                        return latest
        except TimeoutError:
            raise SnapshotUnavailable(f"no picture from the camera within {timeout:.0f} s") from None
        finally:
            track.stop()
