"""Pytest plugin: a real RTSP camera (gst-rtsp-server in a subprocess) for media tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError

from tests.system_deps import missing

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
READY_TIMEOUT = 15.0
DEBIAN_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-x"
)
# every element tests/rtsp_server.py's pipelines use (clockoverlay is Pango: gstreamer1.0-x)
ELEMENTS = ("videotestsrc", "clockoverlay", "videoconvert", "x264enc", "x265enc", "rtph264pay", "rtph265pay")


@pytest.fixture(autouse=True, scope="session")
def aiortc_patched() -> None:
    """aiortc as the gateway runs it: ``Gateway.start`` installs the patch, and media tests
    that build hubs and peers without a gateway need the same."""
    from camera_adapters import aiortc_patch

    aiortc_patch.install()


@functools.cache
def _gst_problem() -> str | None:
    """Why the RTSP server cannot run here, or None if it can."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        f"missing = [e for e in {ELEMENTS!r} if not Gst.ElementFactory.find(e)];"
        "assert not missing, 'GStreamer elements missing: ' + ', '.join(missing)"
    )
    try:
        result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} unusable ({exc})"
    if result.returncode != 0:
        return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "probe failed"
    return None


def require_gst_rtsp() -> None:
    """Skip (or fail on CI) with the Debian packages to install when GStreamer is missing."""
    problem = _gst_problem()
    if problem is None:
        return
    message = (
        f"RTSP test camera needs GStreamer's RTSP server for {SYSTEM_PYTHON} "
        f"({problem}); install Debian packages: {DEBIAN_PACKAGES}"
    )
    missing(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtspCamera:
    """A running test camera; ``clients`` counts RTSP connections to the current process,
    ``sessions`` is the number of RTSP sessions open now (updated within about 0.25 s)."""

    def __init__(self, codec: str, width: int, height: int, fps: int, path: str = "/cam") -> None:
        self.codec = codec
        self.width, self.height, self.fps = width, height, fps
        self.path = path
        self.port = free_port()
        self.clients = 0
        self.sessions = 0
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._log: list[str] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self) -> RtspCamera:
        self.clients = 0
        self.sessions = 0
        self._ready = threading.Event()
        self._proc = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(SERVER_SCRIPT),
                "--port",
                str(self.port),
                "--path",
                self.path,
                "--codec",
                self.codec,
                "--width",
                str(self.width),
                "--height",
                str(self.height),
                "--fps",
                str(self.fps),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(self._proc, self._ready), daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT):
            self.stop()
            raise RuntimeError("RTSP test server not READY in time:\n" + "\n".join(self._log))
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> RtspCamera:
        """Start again on the same port (after ``stop``), as a rebooted camera would."""
        self.stop()
        return self.start()

    def _read(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        with proc.stdout:  # closed at EOF: the camera stopped
            for line in proc.stdout:
                line = line.strip()
                self._log.append(line)
                if line == "READY":
                    ready.set()
                elif line.startswith("CLIENTS ") and proc is self._proc:
                    self.clients = int(line.split()[1])
                elif line.startswith("SESSIONS ") and proc is self._proc:
                    self.sessions = int(line.split()[1])


class RtspCameras:
    """Starts test cameras and stops them all at teardown; ``start`` or call it directly."""

    def __init__(self) -> None:
        self.cameras: list[RtspCamera] = []

    def start(self, codec: str = "h264", width: int = 640, height: int = 360, fps: int = 15) -> RtspCamera:
        camera = RtspCamera(codec, width, height, fps)
        self.cameras.append(camera)
        return camera.start()

    __call__ = start

    def stop_all(self) -> None:
        for camera in self.cameras:
            camera.stop()


@pytest.fixture
def rtsp_camera() -> Iterator[RtspCameras]:
    """Factory: ``rtsp_camera.start(codec="h264", width=640, height=360, fps=15)`` → camera."""
    require_gst_rtsp()
    cameras = RtspCameras()
    yield cameras
    cameras.stop_all()


class PacketLog:
    """Drains a PacketTrack in the background, recording what arrived and when."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.arrivals: list[tuple[float, int, bool, int]] = []
        self.packets: list[Any] = []
        self.keep_packets = True
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await self.track.recv()
            except MediaStreamError:
                return
            self.arrivals.append((loop.time(), packet.pts, packet.is_keyframe, packet.size))
            if self.keep_packets:
                self.packets.append(packet)

    def count_since(self, since: float) -> int:
        return sum(1 for t, *_ in self.arrivals if t >= since)

    async def wait_for_count(self, count: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.arrivals) < count:
            if loop.time() > deadline:
                raise AssertionError(f"only {len(self.arrivals)} of {count} packets in {timeout}s")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self.track.stop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def decode_h264(packets: list[Any]) -> list[Any]:
    """Decode pass-through packets with a fresh PyAV decoder (as a viewer would)."""
    import av

    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for packet in packets:
        frames.extend(decoder.decode(av.Packet(bytes(packet))))
    return frames


class OnvifCameras:
    """Starts ONVIF simulators and stops them all at teardown; ``start`` or call it directly."""

    def __init__(self) -> None:
        self.cameras: list[Any] = []

    def start(
        self,
        main_uri: str = "rtsp://127.0.0.1:8554/main",
        sub_uri: str = "rtsp://127.0.0.1:8554/sub",
        *,
        username: str = "admin",
        password: str = "s3cret-Pa55",
        clock_offset: float = 120.0,
        **options: Any,
    ) -> Any:
        from tests.onvif_simulator import OnvifSimulator

        camera = OnvifSimulator(
            main_uri, sub_uri, username=username, password=password, clock_offset=clock_offset, **options
        )
        self.cameras.append(camera)
        return camera.start()

    __call__ = start

    def stop_all(self) -> None:
        for camera in self.cameras:
            camera.stop()


@pytest.fixture
def onvif_camera() -> Iterator[OnvifCameras]:
    """Factory: ``onvif_camera.start(main_uri, sub_uri, username=, password=,
    clock_offset=120.0, name=, hardware=, get_services=True, snapshot=True,
    clock_needs_credentials=False, soap_digest=False)`` → simulator
    (``device_url``, ``port``, ``udp_port``, ``calls``, ``auth_failures``)."""
    cameras = OnvifCameras()
    yield cameras
    cameras.stop_all()
