"""Benchmark RTSP camera: gst-rtsp-server serving 1280x720 15 fps H.264 at ~1.5 Mbps.

Runs under Debian's /usr/bin/python3 (python3-gi). Like tests/rtsp_server.py, but the
picture is the moving SMPTE pattern (a busy scene, so x264 actually spends the bitrate;
the test's bouncing ball compresses to ~0.1 Mbps at 720p) and x264 runs in CBR at
``--kbps`` with a one-second GOP, the way a school camera's main stream is set up.
Prints "READY" once listening.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(width: int, height: int, fps: int, kbps: int, gop: int) -> str:
    return (
        "( videotestsrc is-live=true pattern=smpte horizontal-speed=4 "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        '! clockoverlay time-format="%H:%M:%S" ! videoconvert '
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
        f"bitrate={kbps} pass=cbr vbv-buf-capacity=1000 "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--kbps", type=int, default=1500)
    parser.add_argument("--gop", type=int, default=0, help="frames per GOP (default: fps, i.e. 1 s)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.width, args.height, args.fps, args.kbps, args.gop or args.fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on port {args.port}", flush=True)
        return 2
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
