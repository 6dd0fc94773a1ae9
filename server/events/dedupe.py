"""Consumers are idempotent by event id: a redelivered event is handled once.

Delivery is at least once (a relay that published but could not record it
publishes again; a consumer that handled an entry but died before XACK gets
it reclaimed), so handlers with effects that do not repeat safely (the
analytics counters) run behind a dedupe store keyed by the event id:

  begin(id) → "new": handle it, then `finish(id)` (or `abandon(id)` if it failed)
            → "done": handled before (within the TTL / capacity): skip it
            → "busy": another consumer is handling it right now: leave it pending (`InProgressElsewhere`)

Two stores, one protocol: `MemoryDedupe` (embedded mode; bounded LRU) and
`RedisDedupe` (scaled out; `SET NX EX`, shared by every core of a group).
A consumer that dies while "busy" holds its lease only `lease_s`; afterwards
the reclaimed entry is handled again (never lost).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import timedelta
from typing import Any, Literal, Protocol

from server.events.bus import Handler

State = Literal["new", "done", "busy"]


class InProgressElsewhere(Exception):
    """The event is being handled by another consumer: leave it pending, retry after it idles."""


def event_id(fields: dict[str, str]) -> str | None:
    """The event's identity: its outbox id plus commit time (None for entries not from an outbox).

    The outbox id alone is unique per database but SQLite may reuse the id of a
    pruned row; the commit time makes a reused id a different event.
    """
    if "outbox_id" not in fields or "created_at" not in fields:
        return None
    return f"{fields['outbox_id']}@{fields['created_at']}"


class DedupeStore(Protocol):
    async def begin(self, key: str) -> State: ...

    async def finish(self, key: str) -> None: ...

    async def abandon(self, key: str) -> None: ...


class MemoryDedupe:
    """In-process store: the last `capacity` handled ids (oldest forgotten first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._done: OrderedDict[str, None] = OrderedDict()
        self._busy: set[str] = set()

    async def begin(self, key: str) -> State:
        if key in self._done:
            self._done.move_to_end(key)
            return "done"
        if key in self._busy:
            return "busy"
        self._busy.add(key)
        return "new"

    async def finish(self, key: str) -> None:
        self._busy.discard(key)
        self._done[key] = None
        while len(self._done) > self.capacity:
            self._done.popitem(last=False)

    async def abandon(self, key: str) -> None:
        self._busy.discard(key)


class RedisDedupe:
    """Shared store: one key per handled event, expiring after `ttl`; a short lease while handling."""

    def __init__(self, client: Any, namespace: str, ttl: timedelta, lease_s: int = 60) -> None:
        self.client = client  # redis.asyncio.Redis, decode_responses=True
        self.namespace, self.ttl_s, self.lease_s = namespace, max(1, int(ttl.total_seconds())), lease_s

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def begin(self, key: str) -> State:
        if await self.client.set(self._key(key), "busy", nx=True, ex=self.lease_s):
            return "new"
        return "done" if await self.client.get(self._key(key)) == "done" else "busy"

    async def finish(self, key: str) -> None:
        await self.client.set(self._key(key), "done", ex=self.ttl_s)

    async def abandon(self, key: str) -> None:
        await self.client.delete(self._key(key))


def idempotent(handler: Handler, store: DedupeStore) -> Handler:
    """`handler`, run at most once per event id (per store); duplicates return at once."""

    async def handle(fields: dict[str, str]) -> None:
        key = event_id(fields)
        if key is None:
            await handler(fields)
            return
        state = await store.begin(key)
        if state == "done":
            return
        if state == "busy":
            raise InProgressElsewhere(key)
        try:
            await handler(fields)
        except BaseException:
            await store.abandon(key)
            raise
        await store.finish(key)

    return handle
