"""Small asyncio helpers: owned tasks and cancel-and-wait.

No fire-and-forget `create_task`: every background task belongs to a
TaskGroup-like owner that cancels and awaits it, so a closed stream provably
releases what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any] | None, timeout_s: float = 5.0) -> None:
    """Cancel `task` and wait until it has really finished (errors logged, not raised)."""
    if task is None or task.done():
        if task is not None and task.done() and not task.cancelled() and task.exception():
            log.debug("task %s had failed: %r", task.get_name(), task.exception())
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(asyncio.shield(task), timeout_s)
    if not task.done():
        log.error("task %s ignored cancellation for %.1fs", task.get_name(), timeout_s)


class TaskOwner:
    """Owns background tasks; `close()` cancels and awaits all of them."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        for task in list(self._tasks):
            await cancel_and_wait(task)
