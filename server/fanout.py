"""In-process fan-out of events to any number of async subscribers.

Used by the core-hosted services (tasks, reminders, monitor) so the bridge and
the dialog can follow their events without polling. Publishing never blocks:
a subscriber that falls `maxsize` items behind loses its oldest item and is
marked `overflowed` (callers with a durable log, like reminders, re-read it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Subscription(Generic[T]):
    """One subscriber's queue; an async iterator and a (sync or async) context manager."""

    def __init__(self, fanout: Fanout[T], maxsize: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.closed = False

    def _offer(self, item: T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            if not self.overflowed:
                log.warning("%s: a slow subscriber lost events", self._fanout.name)
            self.overflowed = True
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def get_nowait(self) -> T | None:
        return None if self._queue.empty() else self._queue.get_nowait()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._fanout._subscribers.discard(self)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self._queue.get()


class Fanout(Generic[T]):
    """Delivers each published item to every current subscriber (same event loop)."""

    def __init__(self, name: str, maxsize: int = 1024) -> None:
        self.name = name
        self.maxsize = maxsize
        self._subscribers: set[Subscription[T]] = set()

    def subscribe(self, maxsize: int | None = None) -> Subscription[T]:
        """Start receiving events now (use as `with fanout.subscribe() as sub: async for e in sub`)."""
        sub = Subscription(self, maxsize or self.maxsize)
        self._subscribers.add(sub)
        return sub

    def publish(self, item: T) -> None:
        for sub in list(self._subscribers):
            sub._offer(item)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
