"""The lean sender's C loop (camera_adapters._rtpsend) on its own: what reaches a UDP
socket decrypts, with consecutive sequence numbers (wrapping at 2^16), the marker on the
last packet only, the payloads unchanged, and GSO runs split back into the datagrams they
were made of. Bad arguments raise instead of sending; send errors come back as errno."""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest
from pylibsrtp import Policy, Session

from camera_adapters import aiortc_patch, fastsend
from tests.system_deps import missing

if fastsend._rtpsend is None:
    missing("camera_adapters._rtpsend is not built; run scripts/test (it installs gcc and builds it)", module=True)

from camera_adapters._rtpsend import send_unit

KEY = bytes(range(44))  # AES-256-GCM: 32-byte key + 12-byte salt
SSRC = 0x11223344
TS = 123_456_789
EXT = bytes([0xBE, 0xDE, 0x00, 0x01, 0x22, 0x01, 0x02, 0x03])  # one abs-send-time element


def sessions() -> tuple[Session, Session]:
    def policy(ssrc_type: int) -> Policy:
        return Policy(key=KEY, ssrc_type=ssrc_type, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)

    return Session(policy(Policy.SSRC_ANY_OUTBOUND)), Session(policy(Policy.SSRC_ANY_INBOUND))


def header(pt: int = 102) -> bytes:
    return struct.pack("!BBHII", 0x90, pt, 0, TS, SSRC) + EXT


@pytest.fixture
def link():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    yield tx, rx
    tx.close()
    rx.close()


def call(
    tx_session: Session,
    tx: socket.socket,
    rx: socket.socket,
    payloads: list[bytes],
    *,
    seq: int = 100,
    gso: bool = True,
    direct: bool = True,
):
    protect, ctx = aiortc_patch.srtp_protect_addresses(tx_session)
    return send_unit(protect, ctx, tx.fileno(), rx.getsockname(), header(), seq, payloads, gso, direct)


def receive(rx: socket.socket, count: int, rx_session: Session) -> list[bytes]:
    return [rx_session.unprotect(rx.recv(4096)) for _ in range(count)]


def check_packets(packets: list[bytes], payloads: list[bytes], first_seq: int) -> None:
    hlen = 12 + len(EXT)
    for i, (packet, payload) in enumerate(zip(packets, payloads, strict=True)):
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
        assert (b0, b1 & 0x7F, ts, ssrc) == (0x90, 102, TS, SSRC)
        assert seq == (first_seq + i) & 0xFFFF
        assert bool(b1 & 0x80) == (i == len(payloads) - 1), f"marker on packet {i}"
        assert packet[12:hlen] == EXT
        assert packet[hlen:] == payload


# equal sizes (one GSO run), a shorter one closing a run, then more runs
SIZES = [1200] * 5 + [700] + [1200] * 3 + [300, 5, 1200]


@pytest.mark.parametrize("gso", [True, False])
def test_unit_arrives_decryptable_in_order(link, gso: bool) -> None:
    tx, rx = link
    tx_session, rx_session = sessions()
    payloads = [os.urandom(n) for n in SIZES]
    next_seq, wire, err, unsent = call(tx_session, tx, rx, payloads, seq=65530, gso=gso)
    assert (err, unsent) == (0, None)
    assert next_seq == (65530 + len(SIZES)) & 0xFFFF
    assert wire == sum(12 + len(EXT) + n + 16 for n in SIZES)  # GCM tag: 16 bytes
    check_packets(receive(rx, len(SIZES), rx_session), payloads, 65530)


def test_more_packets_than_one_gso_send_takes(link) -> None:
    tx, rx = link
    tx_session, rx_session = sessions()
    payloads = [os.urandom(1000) for _ in range(80)]  # > 64 segments and > 64 kB
    next_seq, _, err, unsent = call(tx_session, tx, rx, payloads, seq=0)
    assert (next_seq, err, unsent) == (80, 0, None)
    check_packets(receive(rx, 80, rx_session), payloads, 0)


def test_not_direct_returns_every_datagram_unsent(link) -> None:
    tx, rx = link
    tx_session, rx_session = sessions()
    payloads = [os.urandom(n) for n in (1200, 1200, 40)]
    next_seq, _, err, unsent = call(tx_session, tx, rx, payloads, direct=False)
    assert (next_seq, err, len(unsent)) == (103, 0, 3)
    check_packets([rx_session.unprotect(d) for d in unsent], payloads, 100)
    rx.settimeout(0.2)
    with pytest.raises(TimeoutError):
        rx.recv(4096)


def test_send_error_is_returned_not_raised(link) -> None:
    tx, rx = link
    tx_session, _ = sessions()
    protect, ctx = aiortc_patch.srtp_protect_addresses(tx_session)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = closed.fileno()
    closed.close()
    next_seq, _, err, unsent = send_unit(
        protect, ctx, fd, rx.getsockname(), header(), 7, [b"x" * 100, b"y" * 50], True, True
    )
    assert (next_seq, err, unsent) == (9, errno.EBADF, None)


@pytest.mark.parametrize(
    "change, error",
    [
        ({"payloads": ["text"]}, TypeError),
        ({"payloads": (b"a",)}, TypeError),
        ({"header": b"short"}, ValueError),
        ({"header": b"\x80" * 65}, ValueError),
        ({"addr": ("camera.example", 5000)}, ValueError),
        ({"addr": ("127.0.0.1", 70000)}, ValueError),
        ({"ctx": 0}, ValueError),
    ],
)
def test_bad_arguments_raise_and_send_nothing(link, change: dict, error: type) -> None:
    tx, rx = link
    tx_session, _ = sessions()
    protect, ctx = aiortc_patch.srtp_protect_addresses(tx_session)
    args = {
        "protect": protect,
        "ctx": ctx,
        "fd": tx.fileno(),
        "addr": rx.getsockname(),
        "header": header(),
        "seq": 1,
        "payloads": [b"p" * 10],
        "gso": True,
        "direct": True,
    }
    args.update(change)
    with pytest.raises(error):
        send_unit(*args.values())
    rx.settimeout(0.2)
    with pytest.raises(TimeoutError):
        rx.recv(4096)
