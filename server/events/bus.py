"""Where relayed events go: Redis Streams when scaled out, in-process consumers when embedded.

Both buses give the relay the same promise: `publish` returns only once the
event is safely handed over (XADD acknowledged, or every in-process consumer
succeeded); an exception means "not delivered, try again later".
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, str]], Awaitable[None]]


class EventBus(Protocol):
    name: str

    async def publish(self, stream: str, fields: dict[str, str]) -> str: ...

    async def close(self) -> None: ...


class InProcessBus:
    """Embedded mode: consumers are called directly; a failing consumer fails the publish."""

    name = "in-process"

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._count = 0

    def subscribe(self, stream: str, handler: Handler) -> None:
        self._handlers[stream].append(handler)

    async def publish(self, stream: str, fields: dict[str, str]) -> str:
        for handler in self._handlers.get(stream, []):
            await handler(fields)
        self._count += 1
        return f"local-{self._count}"

    async def close(self) -> None:
        self._handlers.clear()


class RedisStreamsBus:
    """XADD to Redis Streams.

    No `MAXLEN` here: that would delete entries no group has acknowledged yet.
    Streams are trimmed only below every group's acknowledged position
    (`trim.trim_acknowledged`, run periodically by the pipeline).
    """

    name = "redis"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)

    async def publish(self, stream: str, fields: dict[str, str]) -> str:
        entry_id = await self.client.xadd(stream, fields)  # type: ignore[arg-type]
        return str(entry_id)

    async def close(self) -> None:
        await self.client.aclose()
