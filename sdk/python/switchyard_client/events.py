"""A small event emitter whose handlers may be plain functions or coroutines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("switchyard_client")

Handler = Callable[..., Any]


class Emitter:
    """`on(event, handler)`; `emit` calls each handler, running coroutine handlers as tasks.

    A handler's exception is logged and never reaches the connection that delivered the event.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register `handler` for `event`; without a handler, a decorator that registers one."""
        if handler is None:
            def decorator(function: Handler) -> Handler:
                self.on(event, function)
                return function
            return decorator
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def off(self, event: str, handler: Handler) -> None:
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def emit(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers.get(event, [])):
            self.call(event, handler, *args)

    def call(self, event: str, handler: Handler, *args: Any) -> None:
        """Call one handler now (a coroutine handler as a task)."""
        try:
            result = handler(*args)
        except Exception:
            log.exception("%s handler %r failed", event, handler)
            return
        if asyncio.iscoroutine(result):
            self.spawn(result, f"{event} handler")

    def spawn(self, coroutine: Any, what: str) -> asyncio.Task[Any]:
        """Run `coroutine` as a task that is kept alive until done and whose failure is logged."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("%s failed", what, exc_info=finished.exception())
        task.add_done_callback(done)
        return task

    async def cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
