"""Small pure pieces of camera_adapters: bitstream, timeline, URLs, backoff."""

from __future__ import annotations

from camera_adapters.annexb import ParameterSets, join_nals, split_nals
from camera_adapters.backoff import backoff_delay
from camera_adapters.rtsp import AccessUnitAssembler
from camera_adapters.timeline import PtsTimeline
from camera_adapters.urls import parse_synthetic, redact

SPS = b"\x67\x42\xc0\x1e\xda"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x10"
P = b"\x41\x9a\x02"


def test_split_handles_three_and_four_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR
    assert split_nals(data) == [SPS, PPS, IDR]


def test_avcc_packets_become_annexb_with_parameter_sets_before_idr() -> None:
    extradata = (
        b"\x01\x42\xc0\x1e\xff\xe1" + len(SPS).to_bytes(2, "big") + SPS + b"\x01" + len(PPS).to_bytes(2, "big") + PPS
    )
    params = ParameterSets(extradata)
    assert params.length_size == 4
    avcc = len(IDR).to_bytes(4, "big") + IDR
    data, idr = params.complete(params.nals_of(avcc))
    assert idr and data == join_nals([SPS, PPS, IDR])
    data, idr = params.complete(params.nals_of(len(P).to_bytes(4, "big") + P))
    assert not idr and data == join_nals([P])


def test_in_band_parameter_sets_are_remembered() -> None:
    params = ParameterSets(None)
    params.complete([SPS, PPS, IDR])
    data, _ = params.complete([b"\x09\xf0", IDR])
    assert split_nals(data) == [b"\x09\xf0", SPS, PPS, IDR]


def test_assembler_joins_packets_sharing_a_pts() -> None:
    asm = AccessUnitAssembler()
    assert asm.push([SPS, PPS], None) is None
    assert asm.push([IDR], 0) is None
    assert asm.push([IDR], 0) is None
    assert asm.push([P], 6000) == ([SPS, PPS, IDR, IDR], 0)


def test_timeline_stays_monotonic_across_sessions() -> None:
    tl = PtsTimeline()
    out = [tl.map(p, p == 900_000, 100 + i / 15) for i, p in enumerate((900_000, 906_000))]
    out.append(tl.map(0, True, 104.0))
    out.append(tl.map(6000, False, 104.066))
    out.append(tl.map(6000, False, 104.1))
    assert out[0] == 0 and out[1] == 6000
    assert 350_000 < out[2] < 370_000
    assert out[3] == out[2] + 6000 and out[4] == out[3] + 1


def test_redact_and_synthetic_urls() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://10.0.0.5:554/h264"
    assert redact("rtsp://10.0.0.5/x") == "rtsp://10.0.0.5/x"
    spec = parse_synthetic("synthetic://Gym%20East?w=321&h=180&fps=10")
    assert (spec.label, spec.width, spec.height, spec.fps) == ("Gym East", 320, 180, 10)


def test_backoff_schedule() -> None:
    assert [backoff_delay(i) for i in range(10)] == [1, 1, 1, 1, 1, 5, 10, 60, 60, 60]


def test_credentials_never_reach_logs_or_state(caplog) -> None:
    import logging
    import socket
    import threading

    from camera_adapters.rtsp import RtspSource

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"rtsp://officer:hunter2@127.0.0.1:{port}/cam"
    states: list[str] = []
    backoff = threading.Event()

    class Sink:
        def on_unit(self, unit) -> None: ...

        def on_state(self, state: str, detail: str = "") -> None:
            states.append(f"{state} {detail}")
            if state == "backoff":
                backoff.set()

    caplog.set_level(logging.DEBUG, logger="camera_adapters")
    source = RtspSource(url, Sink())
    source.start()
    assert backoff.wait(10)
    source.stop()
    assert source.join(5)
    text = caplog.text + "\n".join(states)
    assert "Connection refused" in caplog.text
    assert "hunter2" not in text and "officer" not in text


def test_qr_stamping_is_safe_from_many_threads() -> None:
    """Simulated cameras stamp frames from their own threads; a shared encoder segfaulted."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from camera_adapters.qrtime import qr_millis_image, read_qr_millis

    def stamp(i: int) -> int | None:
        for _ in range(200):
            image = qr_millis_image(1_700_000_000_000 + i, 180)
        frame = np.full((240, 240, 3), 255, np.uint8)
        frame[: image.shape[0], : image.shape[1]] = image[..., None]
        return read_qr_millis(frame)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(stamp, range(8))) == [1_700_000_000_000 + i for i in range(8)]
