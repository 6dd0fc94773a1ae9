"""Envelopes between cores over Redis pub/sub: one inbox channel per core, a broadcast channel,
and a channel announcing node changes (with why nodes left: departures.py).

Pub/sub, not streams: what travels here is live routing (a request to a node attached now, a
broadcast to whoever is online). Nothing durable depends on it; the durable paths (reminder
triggers, the outbox) have their own logs. A message to a core nobody subscribes for (it died)
is reported to `on_nobody`, so a request gets an UNAVAILABLE answer instead of a timeout.

Messages are `kind (1 byte) + origin core id + "|" + payload`. Publishing never blocks the
caller: a bounded queue feeds one publisher task that sends what piled up in one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.aio import TaskOwner
from server.cluster.keys import ClusterKeys

log = logging.getLogger(__name__)
MAX_QUEUED = 10_000
MAX_BATCH = 256
RETRY_S = 0.5
FLUSH_S = 1.0

ENVELOPE, BROADCAST, CHANGED = b"E", b"B", b"N"


@dataclass(frozen=True)
class Message:
    kind: bytes
    origin: str  # the sending core's id
    payload: bytes


Handler = Callable[[Message], None]
Undelivered = Callable[[bytes], None]


class ClusterBus:
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, core_id: str) -> None:
        self._client = client
        self._keys = keys
        self.core_id = core_id
        self._queue: asyncio.Queue[tuple[str, bytes, Undelivered | None]] = asyncio.Queue(MAX_QUEUED)
        self._tasks = TaskOwner("cluster-bus")
        self.subscribed = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, handler: Handler) -> None:
        """Subscribe (returns once subscribed) and start publishing."""
        self._tasks.spawn(self._listen(handler), "listen")
        self._publisher = self._tasks.spawn(self._publish(), "publish")
        await asyncio.wait_for(self.subscribed.wait(), 10.0)

    async def close(self) -> None:
        """Publish what is queued (a last announcement, say), for at most FLUSH_S, then stop both
        tasks. A flag ends their loops too: redis-py may swallow a cancel that lands inside a
        command."""
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(("", b"", None))  # the publisher stops once it reaches this
        if self._publisher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._publisher), FLUSH_S)
        await self._tasks.close()

    def send(self, core_id: str, kind: bytes, payload: bytes, on_nobody: Undelivered | None = None) -> bool:
        """Queue a message for one core's inbox; False when the queue is full (dropped)."""
        return self._put(self._keys.inbox(core_id), kind, payload, on_nobody)

    def broadcast(self, kind: bytes, payload: bytes) -> bool:
        """Queue a message for every other core."""
        channel = self._keys.changes if kind == CHANGED else self._keys.broadcast
        return self._put(channel, kind, payload, None)

    def _put(self, channel: str, kind: bytes, payload: bytes, on_nobody: Undelivered | None) -> bool:
        try:
            self._queue.put_nowait((channel, kind + self.core_id.encode() + b"|" + payload, on_nobody))
        except asyncio.QueueFull:
            log.warning("cluster bus: %d messages queued, dropping one for %s", MAX_QUEUED, channel)
            return False
        return True

    async def _publish(self) -> None:
        stop = False
        while not stop:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = any(not item[0] for item in batch) or (self._closing and self._queue.empty())
            batch = [item for item in batch if item[0]]  # the close() marker carries no channel
            pipe = self._client.pipeline(transaction=False)
            for channel, data, _ in batch:
                pipe.publish(channel, data)
            try:
                receivers = await pipe.execute()
            except RedisError as exc:
                log.warning("cluster bus: %d messages lost, Redis failed: %s", len(batch), exc)
                receivers = [0] * len(batch)
            for (_, data, on_nobody), count in zip(batch, receivers, strict=True):
                if not count and on_nobody is not None:
                    on_nobody(data[len(self.core_id) + 2:])

    async def _listen(self, handler: Handler) -> None:
        """Subscribe and hand every message to `handler`; on a Redis failure, subscribe again."""
        channels = (self._keys.inbox(self.core_id), self._keys.broadcast, self._keys.changes)
        while not self._closing:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                self.subscribed.set()
                async for raw in pubsub.listen():
                    self._dispatch(handler, raw["data"])
            except RedisError as exc:
                log.warning("cluster bus: subscription lost (%s); again in %.1fs", exc, RETRY_S)
                await asyncio.sleep(RETRY_S)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, handler: Handler, data: bytes) -> None:
        head, sep, payload = data.partition(b"|")
        if not sep or len(head) < 2:
            log.warning("cluster bus: malformed message dropped")
            return
        message = Message(head[:1], head[1:].decode(), payload)
        if message.origin == self.core_id:
            return  # our own broadcast, echoed back
        try:
            handler(message)
        except Exception:
            log.exception("cluster bus: handling a %r message failed", message.kind)
