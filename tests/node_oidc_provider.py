"""panva's certified ``oidc-provider`` (npm) as a subprocess: tests/interop/oidc-provider/
server.mjs on a free port, for testing Sightline against a provider we did not write.
``scripts/test`` installs its npm packages (``npm ci``); without node or them the tests
skip, or fail with CI=true."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .system_deps import missing

HERE = Path(__file__).parent / "interop" / "oidc-provider"
READY_WITHIN = 10.0


@dataclass
class NodeUser:
    sub: str
    name: str
    badge_number: str
    groups: list[str]
    amr: list[str]


@dataclass
class NodeProvider:
    """What the gateway's site file needs (issuer, client id and secret), and the process."""

    port: int
    redirect_uri: str
    users: list[NodeUser]
    client_id: str = "sightline-village"
    client_secret: str = field(default_factory=lambda: os.urandom(24).hex())
    redirect_uris: list[str] = field(default_factory=list)  # set by tests/oidc_helpers.oidc_gateway
    process: subprocess.Popen[str] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jwks(self) -> dict:
        return httpx.get(f"{self.issuer}/jwks", timeout=5).json()

    @contextmanager
    def running(self) -> Iterator[NodeProvider]:
        """Started, and ready (it said so, and its discovery document answers); killed after."""
        if shutil.which("node") is None:
            missing("the OpenID Connect interop tests need Node.js: apt-get install nodejs npm")
        if not (HERE / "node_modules" / "oidc-provider").is_dir():
            missing(f"oidc-provider is not installed: npm ci --prefix {HERE}")
        try:
            self._start()
            yield self
        finally:
            self._stop()

    def restart(self) -> None:
        """Stopped and started again on the same port: with a new signing key (a rotation)."""
        self._stop()
        self._start()

    def _start(self) -> None:
        env = {
            **os.environ,
            "OP_CLIENT_ID": self.client_id,
            "OP_CLIENT_SECRET": self.client_secret,
            "OP_REDIRECT_URI": self.redirect_uri,
            "OP_USERS": json.dumps({u.sub: {k: v for k, v in vars(u).items() if k != "sub"} for u in self.users}),
        }
        with tempfile.TemporaryFile("w+") as errors:
            self.process = subprocess.Popen(
                ["node", "server.mjs", str(self.port)],
                cwd=HERE,
                env=env,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            try:
                self._wait_ready(errors)
            except BaseException:
                self._stop()
                raise

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None

    def _wait_ready(self, errors) -> None:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + READY_WITHIN
            line = ""
            while not line.startswith("ready ") and sel.select(max(0.0, deadline - time.monotonic())):
                line = self.process.stdout.readline()
                if not line:
                    break  # the process ended
        if not line.startswith("ready "):
            errors.seek(0)
            raise AssertionError(f"oidc-provider did not start within {READY_WITHIN} s:\n{errors.read()[-3000:]}")
        assert line.split()[1] == self.issuer
        discovery = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5)
        assert discovery.status_code == 200 and discovery.json()["issuer"] == self.issuer


def installed_version() -> str:
    """The oidc-provider version npm installed (for the report of what was tested against)."""
    return json.loads((HERE / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
