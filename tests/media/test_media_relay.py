"""RelaySource: access units over HTTP from another process, with the RTSP source's states,
watchdog and backoff; a hub fed by it keeps viewers' timestamps monotonic across reconnects
even when the sender's clock jumps back."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from camera_adapters import MediaHubs
from camera_adapters.relay import HEARTBEAT, MAGIC, MEDIA_TYPE, RelaySource, encode_unit
from camera_adapters.synthetic import SyntheticSource
from camera_adapters.units import AccessUnit
from tests.conftest_media import PacketLog, decode_h264


class ListSink:
    def __init__(self) -> None:
        self.units: list[AccessUnit] = []
        self.states: list[str] = []

    def on_unit(self, unit: AccessUnit) -> None:
        self.units.append(unit)

    def on_state(self, state: str, detail: str = "") -> None:
        self.states.append(state)


def synthetic_units(seconds: float = 2.2) -> list[AccessUnit]:
    sink = ListSink()
    source = SyntheticSource("synthetic://relay?w=160&h=90&fps=15", sink)
    source.start()
    time.sleep(seconds)
    source.stop()
    source.join(5)
    start = next(i for i, u in enumerate(sink.units) if u.keyframe)
    return sink.units[start:]


class Sender:
    """An HTTP server sending ``units`` (paced at 15 fps) per connection, then closing."""

    def __init__(self, units: list[AccessUnit], *, status: int = 200, heartbeats: int = 0) -> None:
        self.units, self.status, self.heartbeats = units, status, heartbeats
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(dict(self.headers))
                self.send_response(outer.status)
                self.send_header("Content-Type", MEDIA_TYPE if outer.status == 200 else "application/json")
                self.send_header("X-Relay-Peer", "sender-node")
                self.end_headers()
                if outer.status != 200:
                    self.wfile.write(b'{"error":"unauthorized","detail":"no"}')
                    return
                self.wfile.write(MAGIC)
                for _ in range(outer.heartbeats):
                    self.wfile.write(HEARTBEAT)
                    self.wfile.flush()
                    time.sleep(1.0)
                for unit in outer.units:
                    self.wfile.write(encode_unit(unit.pts, unit.keyframe, unit.data))
                    self.wfile.flush()
                    time.sleep(1 / 15)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/relay/cam/main"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def units() -> list[AccessUnit]:
    return synthetic_units()


def test_units_arrive_and_each_connection_starts_a_new_session(units) -> None:
    sender = Sender(units[:15])
    sink = ListSink()
    relay = RelaySource(sender.url, sink, headers=lambda: {"X-Test": "1"})
    try:
        relay.start()
        deadline = time.monotonic() + 10
        while len(sink.units) < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        relay.stop()
        assert relay.join(5)
        sender.close()
    assert len(sink.units) >= 25, len(sink.units)
    assert [u.data for u in sink.units[:15]] == [u.data for u in units[:15]]
    assert [u.new_session for u in sink.units[:16]] == [True] + [False] * 14 + [True]
    assert sink.states[:2] == ["connecting", "live"]
    assert "backoff" in sink.states and "reconnecting" in sink.states
    assert sender.requests[0]["X-Test"] == "1" and sender.requests[0]["Accept"] == MEDIA_TYPE
    assert relay.ingest == "relay:sender-node"


def test_refused_relay_backs_off_and_ends_when_told(units) -> None:
    sender = Sender(units, status=401)
    sink = ListSink()
    keep = threading.Event()
    keep.set()
    relay = RelaySource(sender.url, sink, keep_going=keep.is_set)
    try:
        relay.start()
        time.sleep(1.5)
        assert len(sender.requests) >= 1 and not sink.units
        keep.clear()
        assert relay.join(3), "the relay did not end when keep_going turned False"
        assert relay.ended
    finally:
        relay.stop()
        sender.close()
    assert sink.states[-1] == "stopped"


def test_heartbeats_only_report_no_video_without_reconnecting(units) -> None:
    sender = Sender(units[:15], heartbeats=7)
    sink = ListSink()
    relay = RelaySource(sender.url, sink)
    try:
        relay.start()
        deadline = time.monotonic() + 12
        while len(sink.units) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        relay.stop()
        relay.join(5)
        sender.close()
    assert len(sender.requests) == 1  # heartbeats kept the connection
    assert sink.states[:3] == ["connecting", "backoff", "live"], sink.states
    assert len(sink.units) >= 5


async def test_hub_timestamps_stay_monotonic_when_the_sender_restarts(units) -> None:
    # the second connection sends the same units again: the sender's clock jumps back
    sender = Sender(units[:20])

    def factory(camera_id: str, stream: str, url: str, sink) -> RelaySource:
        assert (camera_id, stream) == ("cam", "main")
        return RelaySource(sender.url, sink)

    hubs = MediaHubs(idle_timeout=0.5, source_factory=factory)
    hubs.register("cam", "main", "rtsp://ignored.invalid/stream")
    log = PacketLog(hubs.open_track("cam", "main"))
    try:
        await log.wait_for_count(30, timeout=15)
        assert hubs.stats("cam", "main")["ingest"] == "relay:sender-node"
    finally:
        await log.close()
        await hubs.close()
        sender.close()
    pts = [p for _, p, _, _ in log.arrivals]
    assert all(b > a for a, b in zip(pts, pts[1:])), pts
    assert len(decode_h264(log.packets)) >= len(log.packets) - 2
    await asyncio.sleep(0)
