"""aiortc is patched in one place (camera_adapters.aiortc_patch), only when the gateway
starts, and the start-up line says which RTP sender runs and why. Only the last test starts
a server."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camera_adapters import aiortc_patch, fastsend
from camera_adapters.aiortc_patch import SUPPORTED_AIORTC, choose_sender
from tests.system_deps import missing

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = {"aiortc": SUPPORTED_AIORTC, "aioice": "0.13.0", "pylibsrtp": "1.0.0"}


def test_supported_versions_and_built_extension_run_the_lean_sender() -> None:
    choice = choose_sender(SUPPORTED, extension_built=True)
    assert choice.lean and choice.name == "lean"
    assert choice.message == f"RTP sender: lean C send loop (camera_adapters/_rtpsend.c) on aiortc {SUPPORTED_AIORTC}"


def test_missing_c_extension_runs_aiortcs_sender_and_says_how_to_build_it() -> None:
    choice = choose_sender(SUPPORTED, extension_built=False)
    assert not choice.lean and choice.name == "aiortc"
    assert choice.message == (
        "RTP sender: aiortc's own sender, because the C extension camera_adapters/_rtpsend "
        "is not built: run pip install -e . with a C compiler installed"
    )


def test_other_aiortc_version_runs_aiortcs_sender_and_names_both_versions() -> None:
    choice = choose_sender({**SUPPORTED, "aiortc": "1.17.0"}, extension_built=True)
    assert not choice.lean
    assert choice.message == (
        "RTP sender: aiortc's own sender, because aiortc 1.17.0 is installed, "
        f"the lean sender supports {SUPPORTED_AIORTC}"
    )


def test_every_reason_is_given() -> None:
    choice = choose_sender({"aiortc": "1.9.0", "aioice": "0.10.1", "pylibsrtp": "1.0.4"}, extension_built=False)
    assert not choice.lean
    assert "_rtpsend is not built" in choice.message
    assert "aiortc 1.9.0 is installed" in choice.message
    assert "aioice 0.10.1 is installed, the lean sender supports 0.13.x" in choice.message
    assert "pylibsrtp" not in choice.message  # 1.0.4 is in the supported series


@pytest.mark.parametrize("mode", ["0", "off", "OFF "])
def test_operator_can_turn_the_lean_sender_off(mode: str) -> None:
    choice = choose_sender(SUPPORTED, extension_built=True, mode=mode)
    assert not choice.lean and "SIGHTLINE_FASTSEND=" in choice.message and "turns the lean sender off" in choice.message


def test_force_runs_the_lean_sender_on_another_version_and_says_so() -> None:
    choice = choose_sender({**SUPPORTED, "aiortc": "1.17.0"}, extension_built=True, mode="force")
    assert choice.lean
    assert "on aiortc 1.17.0" in choice.message and "SIGHTLINE_FASTSEND=force although" in choice.message
    assert not choose_sender(SUPPORTED, extension_built=False, mode="force").lean  # no C loop, no force


def test_pyproject_pins_the_supported_aiortc() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"aiortc=={SUPPORTED_AIORTC}"' in text


PROBE = textwrap.dedent("""
    import json, sys
    setup = sys.argv[1]
    if setup == "no-extension":
        sys.modules["camera_adapters._rtpsend"] = None  # import fails as when not built
    import aiortc
    if setup == "aiortc-1.17":
        aiortc.__version__ = "1.17.0"
    import aiortc.codecs.h264 as h264
    import aiortc.rtcrtpsender as s
    stock = (s.RTCRtpSender._run_rtp, s.get_encoder, s.RTP_HISTORY_SIZE, h264.PACKET_MAX)
    import camera_adapters, gateway.app, gateway.runtime  # noqa: F401
    out = {"untouched_on_import": (s.RTCRtpSender._run_rtp, s.get_encoder, s.RTP_HISTORY_SIZE,
                                   h264.PACKET_MAX) == stock}
    if setup != "import-only":
        from camera_adapters import aiortc_patch
        choice = aiortc_patch.install()
        out.update(lean=choice.lean, message=choice.message, packet_max=h264.PACKET_MAX,
                   lean_hooks=s.RTCRtpSender._run_rtp is not stock[0],
                   shared_packer=s.get_encoder is not stock[1], once=aiortc_patch.install() is choice)
    print(json.dumps(out))
""")


def probe(setup: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, setup],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_importing_changes_nothing_in_aiortc() -> None:
    assert probe("import-only") == {"untouched_on_import": True}


def test_install_on_the_supported_setup_wraps_the_sender() -> None:
    if not fastsend.extension_built():
        missing("camera_adapters._rtpsend is not built; run scripts/test (it installs gcc and builds it)")
    out = probe("supported")
    assert out["untouched_on_import"] and out["lean"] and out["lean_hooks"] and out["shared_packer"] and out["once"]
    assert out["packet_max"] == 1200
    assert out["message"] == f"RTP sender: lean C send loop (camera_adapters/_rtpsend.c) on aiortc {SUPPORTED_AIORTC}"


def test_install_without_the_c_extension_keeps_aiortcs_sender() -> None:
    out = probe("no-extension")
    assert not out["lean"] and not out["lean_hooks"]
    assert out["shared_packer"] and out["packet_max"] == 1200  # the other changes still apply
    assert "the C extension camera_adapters/_rtpsend is not built" in str(out["message"])


def test_install_on_another_aiortc_keeps_aiortcs_sender() -> None:
    out = probe("aiortc-1.17")
    assert not out["lean"] and not out["lean_hooks"]
    assert "aiortc 1.17.0 is installed, the lean sender supports " + SUPPORTED_AIORTC in str(out["message"])


# Private names of aiortc, aioice, pylibsrtp and asyncio that only aiortc_patch may touch.
PRIVATE = re.compile(
    r"_RTC\w+__|_HeaderExtensionsMap__|\._nominated\b|\._tx_srtp\b|\._state\b.*DtlsState|pylibsrtp\._binding"
    r"|\._split_bitstream\b|\._packetize\w*|_SelectorDatagramTransport|\.RTP_HISTORY_SIZE\b|PACKET_MAX\s*="
    r"|\bget_encoder\s*=|RTCRtpSender\.\w+\s*=|setattr\(\s*(RTCRtpSender|_rtcrtpsender|_h264)|\bCODECS\b"
)


def test_no_aiortc_internals_outside_aiortc_patch() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("camera_adapters/**/*.py"), *ROOT.glob("gateway/**/*.py")]):
        if path.name == "aiortc_patch.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "aiortc internals belong in camera_adapters/aiortc_patch.py:\n" + "\n".join(offenders)


def test_the_guard_sees_what_it_guards_against() -> None:
    for line in (
        'ntp = getattr(sender, "_RTCRtpSender__ntp_timestamp", 0)',
        "_sender.get_encoder = get_encoder",
        "RTCRtpSender._run_rtp = _run_rtp",
        "pair = connection._nominated.get(1)",
        "_h264.PACKET_MAX = 1200",
    ):
        assert PRIVATE.search(line), line


async def test_gateway_start_says_which_sender_runs(site_file, run_gateway, caplog) -> None:
    """The one real server here: start-up logs the choice and /healthz reports it."""
    import httpx

    caplog.set_level(logging.INFO, logger="gateway.runtime")
    gw = await run_gateway(site_file())
    choice = aiortc_patch.install()
    assert gw.gateway.rtp_sender is choice
    assert f"[gateway] {choice.message}" in caplog.messages
    async with httpx.AsyncClient(base_url=gw.base_url) as client:
        health = (await client.get("/healthz")).json()
    assert health["rtp_sender"] == choice.name
