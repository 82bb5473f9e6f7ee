"""RTSP camera source: H.264 passed through untouched, anything else transcoded once.

Reconnects forever with backoff (backoff.py: at most ``NEEDED_MAX_SECONDS`` while the
stream is needed); a watchdog declares the camera dead after ``WATCHDOG_SECONDS`` without
a video packet so a frozen camera is noticed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from .annexb import ParameterSets
from .backoff import RepeatedFailures, backoff_delay
from .errors import SourceError
from .h264enc import H264Encoder
from .source import Source
from .units import VIDEO_CLOCK, AccessUnit
from .urls import redact, scrub

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 10.0
WATCHDOG_SECONDS = 5.0
_FFMPEG_OPTIONS = {
    "rtsp_transport": "tcp",
    "timeout": str(int(WATCHDOG_SECONDS * 1_000_000)),
    "analyzeduration": "1000000",
    "fflags": "nobuffer",
}


def _to_clock(pts: int, time_base: Fraction) -> int:
    return int(pts * time_base * VIDEO_CLOCK)


class AccessUnitAssembler:
    """Joins demuxed packets that share a pts into one access unit.

    RTSP depacketisers emit a packet per RTP payload, so a multi-slice IDR arrives in
    pieces; WebRTC needs one frame per RTP timestamp. Costs one frame of latency.
    """

    def __init__(self) -> None:
        self._pts: int | None = None
        self._nals: list[bytes] = []

    def push(self, nals: list[bytes], pts: int | None) -> tuple[list[bytes], int] | None:
        done = None
        if self._nals and pts is not None and self._pts is not None and pts != self._pts:
            done = (self._nals, self._pts)
            self._nals = []
        if pts is not None:
            self._pts = pts
        self._nals = self._nals + nals
        return done


class RtspSource(Source):
    """Pulls one RTSP session at a time and reconnects on error, EOF or silence."""

    def run(self) -> None:
        failures = 0
        state = "connecting"
        failed = RepeatedFailures()
        while not self.stopping:
            self.sink.on_state(state)
            delivered = False
            try:
                for unit in self._session():
                    if not delivered:
                        delivered = True
                        failures = 0
                        failed.reset()
                        self.sink.on_state("live")
                    self.sink.on_unit(unit)
                    if self.stopping:
                        return
            except (av.FFmpegError, OSError, SourceError) as exc:
                if self.stopping:
                    return
                error = scrub(str(exc), self.url)
                if failed.worth_logging(error):
                    log.warning("camera %s: %s%s", redact(self.url), error, failed.suffix())
            state = "reconnecting"
            delay = backoff_delay(failures, needed=self.needed)
            failures += 1
            self.sink.on_state("backoff", f"retry in {delay:g}s")
            if not self.wait_to_retry(delay):
                return

    def _session(self) -> Iterator[AccessUnit]:
        container = av.open(self.url, options=_FFMPEG_OPTIONS, timeout=(OPEN_TIMEOUT, WATCHDOG_SECONDS))
        try:
            if not container.streams.video:
                raise SourceError("no video stream")
            stream = container.streams.video[0]
            self.transcoding = None if stream.codec_context.name == "h264" else stream.codec_context.name
            if self.transcoding is None:
                units = self._passthrough(container, stream)
            else:
                log.info("camera %s sends %s; transcoding once to H.264", redact(self.url), stream.codec_context.name)
                units = self._transcode(container, stream)
            first = True
            for unit in units:
                if first:
                    unit = AccessUnit(unit.data, unit.pts, unit.keyframe, new_session=True)
                    first = False
                yield unit
            raise SourceError("end of stream")
        finally:
            container.close()

    def _video_packets(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[av.Packet[Any]]:
        """Video packets only; audio is read and dropped but does not feed the watchdog."""
        last_video = time.monotonic()
        for packet in container.demux():
            if self.stopping:
                return
            now = time.monotonic()
            if packet.stream_index != stream.index or packet.size == 0:
                if now - last_video > WATCHDOG_SECONDS:
                    raise SourceError(f"no video for {WATCHDOG_SECONDS:g}s")
                continue
            last_video = now
            yield packet

    def _passthrough(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[AccessUnit]:
        params = ParameterSets(stream.codec_context.extradata)
        assembler = AccessUnitAssembler()
        for packet in self._video_packets(container, stream):
            ts = packet.pts if packet.pts is not None else packet.dts
            pts = None if ts is None else _to_clock(ts, packet.time_base)
            done = assembler.push(params.nals_of(bytes(packet)), pts)
            if done is not None:
                data, idr = params.complete(done[0])
                yield AccessUnit(data, done[1], idr)

    def _transcode(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[AccessUnit]:
        fps = int(stream.average_rate or stream.guessed_rate or 15)
        encoder: H264Encoder | None = None
        for packet in self._video_packets(container, stream):
            for frame in stream.codec_context.decode(packet):
                if encoder is None:
                    encoder = H264Encoder(frame.width & ~1, frame.height & ~1, fps)
                pts = (
                    _to_clock(frame.pts, frame.time_base)
                    if frame.pts is not None and frame.time_base
                    else time.monotonic_ns() * VIDEO_CLOCK // 1_000_000_000
                )
                for data, out_pts, key in encoder.encode(frame, pts):
                    yield AccessUnit(data, out_pts, key)
