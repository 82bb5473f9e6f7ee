"""The domain's tests run on the injectable clock alone: a test here that sleeps or opens a
network connection fails at once, instead of quietly slowing the fast loop down."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import NoReturn

import pytest


def _refuse(what: str) -> NoReturn:
    raise AssertionError(f"a domain test must not {what}: use emergency.clock.FakeClock and in-memory or SQLite stores")


@pytest.fixture(autouse=True)
def _no_sleep_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda *_: _refuse("sleep"))
    monkeypatch.setattr(asyncio, "sleep", lambda *_a, **_k: _refuse("sleep"))
    monkeypatch.setattr(socket.socket, "connect", lambda *_: _refuse("open a network connection"))
    monkeypatch.setattr(socket, "create_connection", lambda *_a, **_k: _refuse("open a network connection"))
