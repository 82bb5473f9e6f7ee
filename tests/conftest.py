from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.cli.demo import sample_site_toml, write_demo_plans
from gateway.config import load_config
from gateway.runtime import Gateway
from gateway.server import GatewayServer

pytest_plugins = ["tests.conftest_media", "tests.conftest_pg", "tests.conftest_redis"]

TESTS = Path(__file__).resolve().parent
# tests/<layer>/ -> the marker of that layer (registered in pyproject.toml): ``scripts/test
# -m domain`` is the fast loop, ``-m "not browser"`` leaves Chromium out.
LAYERS = ("domain", "store", "media", "api", "browser", "cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.relative_to(TESTS).parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/<layer>/, one of {', '.join(LAYERS)}")
        item.add_marker(layer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site_file(tmp_path: Path) -> Callable[..., Path]:
    """Writes the demo district (with its floor plans) to a temp dir; ``replace`` edits the
    text (e.g. a camera URL)."""

    def write(replace: dict[str, str] | None = None) -> Path:
        write_demo_plans(tmp_path)
        text = sample_site_toml(floor_plans=True)
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / "site.toml"
        path.write_text(text)
        return path

    return write


@dataclass
class RunningGateway:
    gateway: Gateway
    base_url: str
    config_path: Path
    app: Any = None

    def token(self, user: str) -> str:
        """A token as a person signed in with password and authenticator code holds."""
        return self.gateway.tokens.issue(user, ttl=600, amr=("pwd", "otp", "mfa"))[0]

    def client(self, user: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=15)


async def serve_app(app, port: int | None = None) -> tuple[uvicorn.Server, asyncio.Task, str]:
    """A real uvicorn server for ``app`` on a loopback port (a free one unless given), started in this loop."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    # as `sightline serve` runs it: relay streams to other nodes end first on shutdown
    gateway = getattr(app.state, "gateway", None)
    server = GatewayServer(config, gateway) if gateway is not None else uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    assert server.started, "gateway did not start"
    return server, task, f"{'https' if config.is_ssl else 'http'}://127.0.0.1:{port}"


@pytest.fixture
async def run_gateway() -> AsyncIterator[Callable[[Path], asyncio.Future[RunningGateway]]]:
    """Starts a real uvicorn server for a site file on a free port, in the test's loop."""
    servers: list[tuple[uvicorn.Server, asyncio.Task]] = []

    async def start(config_path: Path) -> RunningGateway:
        gateway = Gateway(load_config(config_path))
        app = create_app(gateway)
        server, task, base_url = await serve_app(app)
        servers.append((server, task))
        return RunningGateway(gateway, base_url, config_path, app)

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
