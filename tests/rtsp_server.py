"""A real RTSP camera for tests: GStreamer's gst-rtsp-server serving a live test pattern.

Runs under Debian's /usr/bin/python3 (python3-gi is not installable into the venv).
Prints "READY" once listening, "CLIENTS <n> SESSIONS <m>" on every new RTSP client and
"SESSIONS <m>" whenever the number of open RTSP sessions changes, so the fixture can assert
how many RTSP connections the gateway opened and how many are open now.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "! rtph265pay name=pay0 pt=96 config-interval=-1",
}


def _launch_line(codec: str, width: int, height: int, fps: int) -> str:
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f'! clockoverlay time-format="%H:%M:%S" '
        f"! videoconvert ! {ENCODERS[codec].format(fps=fps)} )"
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(args.codec, args.width, args.height, args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)

    clients = 0
    pool = server.get_session_pool()

    def on_client(_server: GstRtspServer.RTSPServer, _client: GstRtspServer.RTSPClient) -> None:
        nonlocal clients
        clients += 1
        _say(f"CLIENTS {clients} SESSIONS {pool.get_n_sessions()}")

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        _say(f"ERROR cannot listen on port {args.port}")
        return 2

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)
    open_sessions = -1

    def report_sessions() -> bool:
        nonlocal open_sessions
        n = pool.get_n_sessions()
        if n != open_sessions:
            open_sessions = n
            _say(f"SESSIONS {n}")
        return True

    GLib.timeout_add(250, report_sessions)
    _say("READY")
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
