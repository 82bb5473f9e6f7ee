"""Bad links for real: a viewer in its own network namespace, joined to this one by a veth pair.

The gateway side of the veth stays in the root namespace (``gateway_ip``, e.g.
198.51.100.1); the viewer's end is inside the namespace (``viewer_ip``). Only addresses from
198.51.100.0/24 (TEST-NET-2) are used, one /29 per link, chosen under a lock so that
concurrent tests (and other sessions' tests) never share a block. Shaping is ``tbf`` on
the host end (what the gateway sends to the viewer); loss and blackouts are nftables rules
in a table of the namespace's own, so nothing outside the namespace is touched.

Everything is removed in :meth:`NetNs.close` (and by the ``netns`` fixture even when the
test fails): deleting the namespace deletes the veth pair and the nftables table with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from .system_deps import missing

NET = ipaddress.ip_network("198.51.100.0/24")
BLOCK = 29  # 8 addresses: gateway .1, viewer .2, room for address changes (.3 - .6)
LOCK = Path("/tmp/sightline-netns.lock")
TABLE = "sightline_viewer"
_count = itertools.count()


def check_system() -> None:
    """Skip (or fail with CI=true) unless we can make namespaces, veths, tbf and nftables."""
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            missing(f"{tool} not found: install the Debian package {package} (scripts/debian-test.txt)")
    if os.geteuid() != 0:
        missing("network namespace tests need root (CAP_NET_ADMIN)")


def _run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _used_blocks() -> set[ipaddress.IPv4Network]:
    """/29 blocks of 198.51.100.0/24 already on an interface of the root namespace."""
    out = _run("ip", "-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            if addr.ip in NET:
                used.add(ipaddress.ip_network(f"{addr.ip}/{BLOCK}", strict=False))
    return used


class NetNs:
    """One viewer namespace and its veth link to the root namespace."""

    def __init__(self) -> None:
        n = next(_count)
        self.name = f"slv{os.getpid()}x{n}"  # <= 15 chars for interface names too
        self.host_if = f"slh{os.getpid() % 100000}x{n}"[:15]
        self.ns_if = f"slv{os.getpid() % 100000}x{n}"[:15]
        self.block: ipaddress.IPv4Network | None = None
        self.gateway_ip = ""
        self.viewer_ip = ""
        self._next_host = 3
        self._created = False

    # -------------------------------------------------------------- life cycle

    def create(self) -> NetNs:
        LOCK.touch(exist_ok=True)
        with LOCK.open() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _used_blocks()
            free = [b for b in NET.subnets(new_prefix=BLOCK) if b not in used]
            if not free:
                raise RuntimeError("no free /29 left in 198.51.100.0/24")
            self.block = free[0]
            hosts = list(self.block.hosts())
            self.gateway_ip, self.viewer_ip = str(hosts[0]), str(hosts[1])
            _run("ip", "netns", "add", self.name)
            self._created = True
            _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if, "netns", self.name)
            _run("ip", "addr", "add", f"{self.gateway_ip}/{BLOCK}", "dev", self.host_if)
            _run("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        # removing the old address keeps the new one (change_address)
        self.exec("sysctl", "-qw", f"net.ipv4.conf.{self.ns_if}.promote_secondaries=1")
        self.exec("ip", "addr", "add", f"{self.viewer_ip}/{BLOCK}", "dev", self.ns_if)
        self.exec("ip", "link", "set", self.ns_if, "up")
        self.exec("ip", "route", "add", "default", "via", self.gateway_ip)
        self.exec("nft", "-f", "-", input=self._table())
        return self

    def close(self) -> None:
        """Remove the namespace (its veth end, and so the pair, and its nftables go with it)."""
        if self._created:
            _run("ip", "link", "del", self.host_if, check=False)
            _run("ip", "netns", "del", self.name, check=False)
            self._created = False

    def __enter__(self) -> NetNs:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- running things inside

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def exec(self, *argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run(*self.argv(*argv), check=check, input=input)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        """A process inside the namespace (text pipes unless told otherwise)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.Popen(self.argv(*argv), **kwargs)  # type: ignore[call-overload,no-any-return]

    def python(self, script: str | Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """This interpreter running ``script`` inside the namespace, from the worktree root."""
        kwargs.setdefault("cwd", str(Path(__file__).resolve().parent.parent))
        return self.popen([sys.executable, str(script), *args], **kwargs)

    # -------------------------------------------------------------- link conditions

    def rate(self, kbit: int, *, burst_bytes: int = 16000, latency_ms: int = 100) -> None:
        """Shape what the gateway sends to the viewer to ``kbit`` kbit/s (tbf on the host end)."""
        _run(
            "tc", "qdisc", "replace", "dev", self.host_if, "root", "tbf",
            "rate", f"{kbit}kbit", "burst", str(burst_bytes), "latency", f"{latency_ms}ms",
        )  # fmt: skip

    def unshaped(self) -> None:
        _run("tc", "qdisc", "del", "dev", self.host_if, "root", check=False)

    def _table(self) -> str:
        return (
            f"table inet {TABLE} {{\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"
        )

    def _rules(self, rules: str) -> None:
        self.exec("nft", "-f", "-", input=f"flush table inet {TABLE}\n{self._table()}{rules}")

    def loss(self, percent: int) -> None:
        """Drop ``percent`` % of the packets arriving at the viewer, at random."""
        self._rules(f"add rule inet {TABLE} input iifname {self.ns_if} numgen random mod 100 < {percent} drop\n")

    def blackout(self) -> None:
        """Nothing in or out of the viewer's link (lo still works)."""
        self._rules(
            f"add rule inet {TABLE} input iifname {self.ns_if} drop\nadd rule inet {TABLE} output oifname {self.ns_if} drop\n"
        )

    def clear(self) -> None:
        """No loss, no blackout."""
        self._rules("")

    def change_address(self) -> str:
        """Give the viewer a new address on its link and remove the old one (a cell handover)."""
        assert self.block is not None
        hosts = list(self.block.hosts())
        if self._next_host >= len(hosts):
            raise RuntimeError("no address left in this link's block")
        new = str(hosts[self._next_host - 1])
        self._next_host += 1
        self.exec("ip", "addr", "add", f"{new}/{BLOCK}", "dev", self.ns_if)
        self.exec("ip", "addr", "del", f"{self.viewer_ip}/{BLOCK}", "dev", self.ns_if)
        self.exec("ip", "route", "replace", "default", "via", self.gateway_ip, "src", new)
        self.viewer_ip = new
        return new


@contextlib.contextmanager
def viewer_namespace() -> Iterator[NetNs]:
    check_system()
    ns = NetNs()
    try:
        yield ns.create()
    finally:
        ns.close()


@pytest.fixture
def netns() -> Iterator[NetNs]:
    """A viewer namespace joined to this one, removed after the test whatever happens."""
    with viewer_namespace() as ns:
        yield ns
