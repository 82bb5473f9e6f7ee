"""The event bus that carries domain events to whatever must react to them.

In-process for one node. Domain commands may run in a worker thread (FastAPI runs sync
endpoints there), so events are always handed to the bus's own event loop; handlers run
on that loop. A handler that raises is logged and does not stop the others: one bad
subscriber must not keep a session open.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

Handler = Callable[[object], Awaitable[None] | None]


class EventBus(Protocol):
    def publish(self, event: object) -> None: ...
    def subscribe(self, handler: Handler) -> None: ...


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Events published from any thread are delivered on ``loop``."""
        self._loop = loop

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: object) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the event bus is not bound to an event loop; call bind() at start")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._dispatch(event)
        else:
            loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: object) -> None:
        for handler in self._handlers:
            try:
                result = handler(event)
            except Exception:
                log.exception("event handler %r failed on %s", handler, type(event).__name__)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event handler failed", exc_info=task.exception())

    async def drain(self) -> None:
        await asyncio.sleep(0)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
