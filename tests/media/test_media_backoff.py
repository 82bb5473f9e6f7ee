"""The reconnect delay policy (backoff.py) without a camera: at most NEEDED_MAX_SECONDS
while a stream is needed, the long backoff only when nobody needs it, and a stream that
becomes needed cuts a long wait short; the hub tells its source which case applies."""

from __future__ import annotations

import threading
import time

import pytest

from camera_adapters import backoff
from camera_adapters.backoff import (
    BACKOFF_SECONDS,
    NEEDED_MAX_SECONDS,
    REPEAT_LOG_EVERY,
    RepeatedFailures,
    backoff_delay,
)
from camera_adapters.hub import Hub
from camera_adapters.relay import RelaySource
from camera_adapters.rtsp import RtspSource
from camera_adapters.source import Source, SourceSink
from camera_adapters.units import AccessUnit
from tests.conftest_media import free_port


class StateSink:
    def __init__(self) -> None:
        self.states: list[tuple[float, str, str]] = []

    def on_unit(self, unit: AccessUnit) -> None:
        pass

    def on_state(self, state: str, detail: str = "") -> None:
        self.states.append((time.monotonic(), state, detail))


class Waiter(Source):
    """A source that only waits, as a reconnect loop would between attempts."""

    def run(self) -> None:
        pass


def test_needed_never_waits_more_than_the_cap() -> None:
    assert NEEDED_MAX_SECONDS <= 2.0
    assert all(backoff_delay(i, needed=True) <= NEEDED_MAX_SECONDS for i in range(50))


def test_not_needed_grows_to_todays_maximum() -> None:
    delays = [backoff_delay(i) for i in range(12)]
    assert delays == sorted(delays)
    assert delays[0] <= 1 and delays[-1] == max(BACKOFF_SECONDS) == 60
    assert max(BACKOFF_SECONDS) > NEEDED_MAX_SECONDS


def test_repeated_failures_are_logged_sparingly() -> None:
    failed = RepeatedFailures()
    logged = [failed.worth_logging("refused") for _ in range(2 * REPEAT_LOG_EVERY + 1)]
    assert [i for i, yes in enumerate(logged) if yes] == [0, REPEAT_LOG_EVERY, 2 * REPEAT_LOG_EVERY]
    assert failed.suffix() == f" ({2 * REPEAT_LOG_EVERY} more times)"
    assert failed.worth_logging("timed out") and failed.suffix() == ""  # a different failure is news
    failed.reset()
    assert failed.worth_logging("timed out")


def _wait_in_thread(source: Source, seconds: float) -> tuple[threading.Thread, list[tuple[bool, float]]]:
    result: list[tuple[bool, float]] = []

    def wait() -> None:
        start = time.monotonic()
        retry = source.wait_to_retry(seconds)
        result.append((retry, time.monotonic() - start))

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, result


def test_becoming_needed_cuts_a_long_wait() -> None:
    source = Waiter("rtsp://127.0.0.1:9/x", StateSink())
    thread, result = _wait_in_thread(source, 60.0)
    time.sleep(0.2)
    assert thread.is_alive()
    source.set_needed(True)
    thread.join(2.0)
    assert not thread.is_alive(), "a viewer arrived but the source kept waiting"
    assert result[0][0] is True and result[0][1] < 1.0


def test_wait_runs_its_course_unless_something_changes() -> None:
    source = Waiter("rtsp://127.0.0.1:9/x", StateSink())
    source.set_needed(True)
    start = time.monotonic()
    assert source.wait_to_retry(0.3) is True
    assert 0.29 <= time.monotonic() - start < 1.0
    source.set_needed(False)  # the viewer left: a short wait already under way stands
    assert source.wait_to_retry(0.1) is True


def test_a_long_wait_chosen_just_before_a_viewer_came_is_capped() -> None:
    source = Waiter("rtsp://127.0.0.1:9/x", StateSink())
    source.set_needed(True)
    start = time.monotonic()
    assert source.wait_to_retry(60.0) is True
    assert NEEDED_MAX_SECONDS - 0.05 <= time.monotonic() - start < NEEDED_MAX_SECONDS + 0.5


def test_stop_ends_a_wait_without_retrying() -> None:
    source = Waiter("rtsp://127.0.0.1:9/x", StateSink())
    thread, result = _wait_in_thread(source, 60.0)
    time.sleep(0.1)
    source.stop()
    thread.join(2.0)
    assert result and result[0][0] is False


def test_keep_waiting_can_give_up() -> None:
    source = Waiter("rtsp://127.0.0.1:9/x", StateSink())
    start = time.monotonic()
    assert source.wait_to_retry(60.0, lambda: False, check_every=0.05) is False
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("kind", ["rtsp", "relay"])
def test_source_in_long_backoff_reconnects_when_a_viewer_arrives(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera (or relay sender) that refuses connections: unneeded, the source settles
    into the long wait; needed, it tries again at once and then never waits more than the cap."""
    monkeypatch.setattr(backoff, "BACKOFF_SECONDS", (0.05, 60))
    sink = StateSink()
    source: Source = (
        RtspSource(f"rtsp://127.0.0.1:{free_port()}/cam", sink)
        if kind == "rtsp"
        else RelaySource(f"http://127.0.0.1:{free_port()}/relay", sink)
    )
    source.start()
    try:
        deadline = time.monotonic() + 10
        while not any(detail == "retry in 60s" for _, _, detail in sink.states):
            assert time.monotonic() < deadline, sink.states
            time.sleep(0.02)
        attempts = sum(1 for _, state, _ in sink.states if state == "reconnecting")
        time.sleep(0.3)
        assert sum(1 for _, state, _ in sink.states if state == "reconnecting") == attempts
        needed_at = time.monotonic()
        source.set_needed(True)
        while sum(1 for _, state, _ in sink.states if state == "reconnecting") == attempts:
            assert time.monotonic() - needed_at < 2.0, "the long backoff was not cut short"
            time.sleep(0.02)
        time.sleep(0.5)
        waits = [detail for t, state, detail in sink.states if state == "backoff" and t > needed_at]
        assert waits and all(float(d.removeprefix("retry in ").removesuffix("s")) <= NEEDED_MAX_SECONDS for d in waits)
    finally:
        source.stop()
        assert source.join(5)


class FakeSource(Source):
    def run(self) -> None:
        self.sleep(60)


async def test_hub_tells_its_source_whether_anyone_needs_it() -> None:
    made: list[Source] = []

    def factory(url: str, sink: SourceSink) -> Source:
        made.append(FakeSource(url, sink))
        return made[-1]

    hub = Hub("rtsp://127.0.0.1:9/x", factory, idle_timeout=30.0, queue_frames=10)
    try:
        track = hub.open_track()
        source = made[0]
        assert source.needed
        track.stop()
        assert not source.needed and hub.ingesting  # idling: still ingesting, nobody needs it
        hub.pin()
        assert source.needed
        second = hub.open_track()
        hub.unpin()
        assert source.needed
        second.stop()
        assert not source.needed
        hub.pin()
        assert source.needed and len(made) == 1
    finally:
        await hub.close()


def test_a_camera_down_while_watched_does_not_flood_the_log(monkeypatch, caplog) -> None:
    """Needed, a dead camera is retried every second; the same failure is logged once per
    REPEAT_LOG_EVERY attempts, not every time."""
    import logging

    monkeypatch.setattr(backoff, "BACKOFF_SECONDS", (0.01,))
    monkeypatch.setattr(backoff, "REPEAT_LOG_EVERY", 10)
    caplog.set_level(logging.WARNING, logger="camera_adapters")
    sink = StateSink()
    source = RtspSource(f"rtsp://127.0.0.1:{free_port()}/cam", sink)
    source.start()
    try:
        deadline = time.monotonic() + 20
        while sum(1 for _, state, _ in sink.states if state == "backoff") < 25:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        source.stop()
        assert source.join(5)
    attempts = sum(1 for _, state, _ in sink.states if state == "backoff")
    warnings = [r.getMessage() for r in caplog.records if r.name == "camera_adapters.rtsp"]
    assert 2 <= len(warnings) <= attempts // 10 + 1, warnings
    assert "Connection refused" in warnings[0] and "10 more times" in warnings[1]
