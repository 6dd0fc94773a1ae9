"""The core's event pipeline: outbox relay → bus → consumers (LTM writes, analytics).

Embedded (no --events-redis-url): the relay hands events straight to
in-process consumers. Scaled out: events go to Redis Streams and this core
also runs a consumer-group worker per stream (more cores simply add
consumers to the same groups) and trims the streams below what every group
has acknowledged. Every handler runs behind a dedupe store (by event id), so
a redelivered event is handled once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from server.aio import TaskOwner
from server.events.bus import EventBus, Handler, InProcessBus, RedisStreamsBus
from server.events.config import EventsConfig
from server.events.consumers import analytics_recorder, ltm_writer
from server.events.dedupe import MemoryDedupe, RedisDedupe, idempotent
from server.events.outbox import ANALYTICS_STREAM, LTM_STREAM
from server.events.redis_consumer import StreamConsumer
from server.events.relay import OutboxRelay
from server.events.retry import FailureStreak
from server.events.trim import backlog, record, trim_acknowledged
from server.storage.db import Database

log = logging.getLogger(__name__)
GROUP = "peromesh-core"


@dataclass
class EventPipeline:
    relay: OutboxRelay
    bus: EventBus
    consumers: list[StreamConsumer] = field(default_factory=list)
    tasks: TaskOwner = field(default_factory=lambda: TaskOwner("events"))

    async def stop(self) -> None:
        """Stop the loops, hand over what is due, close; a failing last hand-over only leaves rows for next start."""
        await self.tasks.close()
        try:
            await self.relay.relay_once()
        except Exception as exc:
            log.warning("events: last hand-over before stopping failed (the rows wait in the outbox): %s", exc)
        await self.bus.close()


async def start_pipeline(db: Database, redis_url: str | None, memory: grpc.aio.Channel | None,
                         metadata: Sequence[tuple[str, str]] = (),
                         config: EventsConfig | None = None) -> EventPipeline:
    config = config or EventsConfig()
    handlers: dict[str, Handler] = {ANALYTICS_STREAM: analytics_recorder}
    if memory is not None:  # the process's channel to the memory server (its owner closes it)
        handlers[LTM_STREAM] = ltm_writer(memory, metadata)
    bus: EventBus
    consumers: list[StreamConsumer] = []
    if redis_url:
        redis_bus = RedisStreamsBus(redis_url)
        bus = redis_bus
        name = f"{socket.gethostname()}-{id(redis_bus):x}"
        consumers = [_group_consumer(redis_bus, stream, name, handler, config) for stream, handler in handlers.items()]
    else:
        local = InProcessBus()
        for stream, handler in handlers.items():
            local.subscribe(stream, idempotent(handler, MemoryDedupe(config.dedupe_capacity)))
        bus = local
    pipeline = EventPipeline(OutboxRelay(db, bus, config=config), bus, consumers)
    pipeline.tasks.spawn(pipeline.relay.run(), "relay")
    for consumer in consumers:
        pipeline.tasks.spawn(consumer.run(), f"consume:{consumer.stream}")
    if redis_url:
        pipeline.tasks.spawn(trim_periodically(redis_bus.client, list(handlers), config), "trim")
    log.info("events: outbox relay → %s (%s)", bus.name, ", ".join(handlers))
    return pipeline


def _group_consumer(bus: RedisStreamsBus, stream: str, name: str, handler: Handler,
                    config: EventsConfig) -> StreamConsumer:
    """This core's member of the stream's group; the dedupe store is shared by the whole group."""
    dedupe = RedisDedupe(bus.client, f"peromesh:dedupe:{GROUP}:{stream}", config.dedupe_ttl)
    streak = FailureStreak(f"consumer {stream}/{GROUP}", log, config.retry_base_s, config.retry_max_s)
    return StreamConsumer(bus.client, stream, GROUP, name, idempotent(handler, dedupe), streak=streak)


async def trim_periodically(client: object, streams: list[str], config: EventsConfig) -> None:
    """Every `trim_interval_s`: drop what every group has acknowledged and record each group's backlog.

    Redis down: try again next time (one warning per outage).
    """
    streak = FailureStreak("stream trimming", log, config.trim_interval_s, config.trim_interval_s)
    while True:
        await asyncio.sleep(config.trim_interval_s)
        try:
            for stream in streams:
                await trim_acknowledged(client, stream)
                record(await backlog(client, stream))
        except Exception as exc:
            streak.failed(exc)
            continue
        streak.succeeded()
