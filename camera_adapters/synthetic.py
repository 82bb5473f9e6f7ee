"""Demo camera: a live H.264 stream drawn in-process, stamped with the wall clock.

Lets the demo and the tests run without cameras, and the QR time stamp lets benchmarks
measure glass-to-glass latency from any decoded frame.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import av
import cv2
import numpy as np

from .h264enc import H264Encoder
from .qrtime import qr_millis_image
from .source import Source, SourceSink
from .units import VIDEO_CLOCK, AccessUnit
from .urls import SyntheticSpec, parse_synthetic


def _background(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    bgr = np.empty((height, width, 3), np.uint8)
    bgr[..., 0] = (60 + 120 * x + 0 * y).astype(np.uint8)
    bgr[..., 1] = (40 + 80 * y + 0 * x).astype(np.uint8)
    bgr[..., 2] = (90 + 60 * (1 - x) * y).astype(np.uint8)
    return bgr


class Scene:
    """Renders frame ``n``: gradient, a moving ball, the label, UTC time and a time QR."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self._bg = _background(spec.width, spec.height)
        self.qr_size = min(max(150, int(spec.height * 0.6)), spec.height - 8, spec.width // 2)
        self._font_scale = max(0.4, spec.height / 720)

    def render(self, index: int, millis: int) -> np.ndarray:
        w, h = self.spec.width, self.spec.height
        img = self._bg.copy()
        span = max(1, w - self.qr_size - 40)
        phase = (index * 4) % (2 * span)
        x = 20 + (phase if phase < span else 2 * span - phase)
        cv2.circle(img, (x, h // 2), max(8, h // 12), (30, 200, 250), -1, cv2.LINE_AA)
        stamp = datetime.fromtimestamp(millis / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
        for text, y in ((self.spec.label, 0.1), (f"{stamp} UTC", 0.95)):
            org = (10, int(h * y) + 6)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, (255, 255, 255), 1, cv2.LINE_AA)
        qr = qr_millis_image(millis, self.qr_size)
        top, left = (h - qr.shape[0]) // 2, w - qr.shape[1] - 4
        img[top : top + qr.shape[0], left : left + qr.shape[1]] = qr[..., None]
        return img


class SyntheticSource(Source):
    """Generates, encodes and emits frames paced to real time."""

    def __init__(self, url: str, sink: SourceSink) -> None:
        super().__init__(url, sink)
        self.spec = parse_synthetic(url)

    def run(self) -> None:
        spec = self.spec
        scene = Scene(spec)
        encoder = H264Encoder(spec.width, spec.height, spec.fps)
        interval = 1.0 / spec.fps
        start = time.monotonic()
        slot = 0
        first = True
        self.sink.on_state("live")
        while not self.stopping:
            millis = time.time_ns() // 1_000_000
            bgr = scene.render(slot, millis)
            i420 = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            for data, pts, key in encoder.encode(frame, slot * VIDEO_CLOCK // spec.fps):
                self.sink.on_unit(AccessUnit(data, pts, key, new_session=first))
                first = False
            slot += 1
            delay = start + slot * interval - time.monotonic()
            if delay < -interval:
                slot = int((time.monotonic() - start) / interval) + 1
                delay = start + slot * interval - time.monotonic()
            if self.sleep(max(0.0, delay)):
                break
