"""Prometheus metrics. One registry per gateway so tests can run several side by side."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

StatsSource = Callable[[], dict[tuple[str, str], dict[str, Any]]]

_GAUGES = {
    "up": ("sightline_camera_up", "1 while the stream delivers video."),
    "fps": ("sightline_camera_fps", "Frames per second arriving from the camera."),
    "bitrate_kbps": ("sightline_camera_bitrate_kbps", "Bitrate arriving from the camera, kbit/s."),
    "keyframe_age_s": ("sightline_camera_keyframe_age_seconds", "Seconds since the last keyframe."),
    "viewers": ("sightline_camera_viewers", "Viewer tracks on the stream."),
}
_COUNTERS = {
    "reconnects": ("sightline_camera_reconnects", "Reconnects to the camera."),
    "drops": ("sightline_camera_dropped_frames", "Frames dropped for slow viewers."),
}


class CameraCollector(Collector):
    """Per camera-stream health, read from the media layer at scrape time."""

    def __init__(self, stats: StatsSource) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._stats()
        labels = ["camera", "stream"]
        gauges = {k: GaugeMetricFamily(n, h, labels=labels) for k, (n, h) in _GAUGES.items()}
        counters = {k: CounterMetricFamily(n, h, labels=labels) for k, (n, h) in _COUNTERS.items()}
        ingest = GaugeMetricFamily(
            "sightline_camera_ingest",
            '1 for where this node\'s video of the stream comes from: ingest="camera" (this node pulls '
            'the camera) or "relay:<node>" (relayed from the node holding the camera\'s lease).',
            labels=[*labels, "ingest"],
        )
        for (camera, stream), s in sorted(stats.items()):
            values = {**s, "up": 1.0 if s.get("state") == "live" else 0.0}
            for key, family in gauges.items():
                if values.get(key) is not None:
                    family.add_metric([camera, stream], float(values[key]))
            for key, counter in counters.items():
                counter.add_metric([camera, stream], float(values.get(key) or 0))
            if s.get("ingest"):
                ingest.add_metric([camera, stream, str(s["ingest"])], 1.0)
        yield from gauges.values()
        yield from counters.values()
        yield ingest


__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self, camera_stats: StatsSource | None = None) -> None:
        self.registry = CollectorRegistry()
        if camera_stats is not None:
            self.registry.register(CameraCollector(camera_stats))
        self.view_sessions = Gauge("sightline_view_sessions", "Live WHEP view sessions.", registry=self.registry)
        self.whep_requests = Counter(
            "sightline_whep_requests", "WHEP session requests by outcome.", ["outcome"], registry=self.registry
        )
        self.sessions_revoked = Counter(
            "sightline_sessions_revoked", "View sessions closed because their grant ended.", registry=self.registry
        )
        self.auth_failures = Counter("sightline_auth_failures", "Rejected credentials.", registry=self.registry)
        self.notifications = Gauge(
            "sightline_notifications",
            "Webhook notifications in the outbox by state (pending, dead).",
            ["state"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
