"""Over real Redis: streams are trimmed only below every group's acknowledged position; redeliveries count once."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from opentelemetry.metrics import CallbackOptions

from server.events import outbox
from server.events.bus import RedisStreamsBus
from server.events.config import EventsConfig
from server.events.consumers import analytics_recorder
from server.events.dedupe import MemoryDedupe, RedisDedupe, idempotent
from server.events.pipeline import trim_periodically
from server.events.redis_consumer import StreamConsumer
from server.events.retry import FailureStreak
from server.events.trim import _observe_lag, _observe_pending, backlog, record, trim_acknowledged
from tests.events.outbox_kit import REDIS_URL


@pytest.fixture
async def client() -> AsyncIterator[tuple[Any, str]]:
    """A Redis client and a stream key of this test's own (deleted afterwards, with its dedupe keys)."""
    conn = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream = f"test.trim.{uuid.uuid4().hex[:10]}"
    try:
        yield conn, stream
    finally:
        keys = [k async for k in conn.scan_iter(f"{stream}*")]
        if keys:
            await conn.delete(*keys)
        await conn.aclose()


async def read(conn: Any, stream: str, group: str, count: int) -> list[str]:
    batches = await conn.xreadgroup(group, "c", {stream: ">"}, count=count)
    return [entry_id for _s, entries in batches or [] for entry_id, _f in entries]


async def test_trim_keeps_everything_a_group_has_not_acknowledged(client: tuple[Any, str]) -> None:
    conn, stream = client
    ids = [await conn.xadd(stream, {"i": str(i)}) for i in range(10)]
    for group in ("fast", "slow"):
        await conn.xgroup_create(stream, group, id="0")
    fast = await read(conn, stream, "fast", 10)
    await conn.xack(stream, "fast", *fast[:6])  # entries 6..9 delivered, still pending
    slow = await read(conn, stream, "slow", 3)
    await conn.xack(stream, "slow", *slow)  # slow has not even been given 3..9
    assert await trim_acknowledged(conn, stream) == 3
    assert [e for e, _ in await conn.xrange(stream)] == ids[3:]
    await conn.xack(stream, "slow", *await read(conn, stream, "slow", 10))
    assert await trim_acknowledged(conn, stream) == 3  # now fast's oldest pending entry (6) bounds it
    assert [e for e, _ in await conn.xrange(stream)] == ids[6:]
    figures = await backlog(conn, stream)
    assert {(b.group, b.pending, b.lag) for b in figures} == {("fast", 4, 0), ("slow", 0, 0)}
    record(figures)
    gauge = {o.attributes["group"]: o.value for o in _observe_pending(CallbackOptions())
             if o.attributes and o.attributes["stream"] == stream}
    assert gauge == {"fast": 4, "slow": 0}
    await conn.xack(stream, "fast", *fast[6:])
    assert await trim_acknowledged(conn, stream) == 4 and await conn.xlen(stream) == 0


async def test_a_stalled_group_loses_nothing_however_long_the_stream(client: tuple[Any, str]) -> None:
    conn, stream = client
    await conn.xgroup_create(stream, "g", id="0", mkstream=True)
    bus = RedisStreamsBus(REDIS_URL)
    try:
        for i in range(300):
            await bus.publish(stream, {"i": str(i)})
    finally:
        await bus.close()
    assert await trim_acknowledged(conn, stream) == 0
    assert len(await read(conn, stream, "g", 1000)) == 300
    no_group = f"{stream}.nogroup"
    await conn.xadd(no_group, {"x": "1"})
    assert await trim_acknowledged(conn, no_group) == 0 and await conn.xlen(no_group) == 1


def fields_of(correlation_id: str, outbox_id: int) -> dict[str, str]:
    row = outbox.event("events.analytics", "TurnFinished", correlation_id, {"tokens": 3})
    row.id = outbox_id
    return row.fields()


async def test_a_redelivered_event_is_counted_once(client: tuple[Any, str], caplog: pytest.LogCaptureFixture) -> None:
    conn, stream = client
    dedupe = RedisDedupe(conn, f"{stream}:dedupe", timedelta(minutes=5))
    consumer = StreamConsumer(conn, stream, "g", "c1", idempotent(analytics_recorder, dedupe), block_ms=50,
                              retry_idle_ms=0)
    await consumer.ensure_group()
    event = fields_of("dup#1", 41)
    await conn.xadd(stream, event)
    await conn.xadd(stream, event)  # a relay that published, then could not record it, publishes again
    await conn.xadd(stream, fields_of("dup#2", 42))
    caplog.set_level(logging.INFO, logger="server.events.consumers")
    assert await consumer.step() == 3
    turns = [r.getMessage() for r in caplog.records if r.name == "server.events.consumers"]
    assert [t.split(":")[0] for t in turns] == ["turn dup#1", "turn dup#2"]
    assert await consumer.pending() == 0 and consumer.handled == 3


async def test_a_duplicate_in_flight_elsewhere_stays_pending_until_the_first_is_done(
        client: tuple[Any, str]) -> None:
    conn, stream = client
    release = asyncio.Event()
    effects: list[str] = []

    async def slow(fields: dict[str, str]) -> None:
        await release.wait()
        effects.append(fields["correlation_id"])

    dedupe = RedisDedupe(conn, f"{stream}:dedupe", timedelta(minutes=5))
    first = StreamConsumer(conn, stream, "g", "c1", idempotent(slow, dedupe), block_ms=50, retry_idle_ms=0)
    second = StreamConsumer(conn, stream, "g", "c2", idempotent(slow, dedupe), block_ms=50, retry_idle_ms=60_000)
    await first.ensure_group()
    event = fields_of("busy#1", 7)
    await conn.xadd(stream, event)
    handling = asyncio.get_running_loop().create_task(first.step())
    for _ in range(500):  # until c1 holds the lease, blocked in its handler
        if await conn.exists(f"{stream}:dedupe:7@{event['created_at']}"):
            break
        await asyncio.sleep(0.01)
    await conn.xadd(stream, event)
    assert await second.step() == 0 and await second.pending() == 2  # left pending (next to c1's), not failed
    release.set()
    assert await handling == 1 and await second.pending() == 1
    second.retry_idle_ms = 0
    assert await second.step() == 1  # reclaimed: done already, so acknowledged without a second effect
    assert effects == ["busy#1"] and await second.pending() == 0
    assert await conn.xlen(f"{stream}.dead") == 0


async def test_memory_dedupe_is_bounded() -> None:
    store = MemoryDedupe(capacity=2)
    for key in ("a", "b", "c"):
        assert await store.begin(key) == "new"
        await store.finish(key)
    assert await store.begin("c") == "done" and await store.begin("a") == "new"  # a was forgotten
    assert await store.begin("a") == "busy"
    await store.abandon("a")
    assert await store.begin("a") == "new"


async def test_consumer_outlives_redis_being_down_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    conn = redis.Redis.from_url(f"redis://127.0.0.1:{dead_port}/0", decode_responses=True, socket_connect_timeout=1)
    streak = FailureStreak("consumer test", logging.getLogger("test.consumer"), base_s=0.01, max_s=0.02)
    consumer = StreamConsumer(conn, "s", "g", "c", analytics_recorder, streak=streak)
    caplog.set_level(logging.DEBUG, logger="test.consumer")
    task = asyncio.get_running_loop().create_task(consumer.run())
    try:
        for _ in range(1000):
            assert not task.done(), "the consumer must keep retrying"
            if streak.failures >= 3:
                break
            await asyncio.sleep(0.01)
        assert streak.failures >= 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.aclose()
    warnings = [r for r in caplog.records if r.name == "test.consumer" and r.levelno == logging.WARNING]
    assert len(warnings) == 1


async def test_the_pipeline_trim_loop_trims_and_records(client: tuple[Any, str]) -> None:
    conn, stream = client
    ids = [await conn.xadd(stream, {"i": str(i)}) for i in range(5)]
    await conn.xgroup_create(stream, "g", id="0")
    await conn.xack(stream, "g", *await read(conn, stream, "g", 3))
    loop = asyncio.get_running_loop().create_task(
        trim_periodically(conn, [stream], EventsConfig(trim_interval_s=0.02)))

    def lag() -> dict[str, float]:
        return {str(o.attributes["group"]): o.value for o in _observe_lag(CallbackOptions())
                if o.attributes and o.attributes["stream"] == stream}

    try:
        for _ in range(500):  # recorded right after the trim of the same round
            if lag():
                break
            await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert lag() == {"g": 2}
    assert [e for e, _ in await conn.xrange(stream)] == ids[3:]


async def test_an_outage_longer_than_the_delivery_limit_dead_letters_nothing(
        client: tuple[Any, str], caplog: pytest.LogCaptureFixture) -> None:
    conn, stream = client
    refusals = 6
    effects: list[str] = []

    async def memory(fields: dict[str, str]) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise ConnectionError("memory is down")
        effects.append(fields["correlation_id"])

    consumer = StreamConsumer(conn, stream, "g", "c1", memory, block_ms=20, retry_idle_ms=0, max_deliveries=2)
    await consumer.ensure_group()
    await conn.xadd(stream, fields_of("out#1", 1))
    caplog.set_level(logging.DEBUG, logger="server.events.redis_consumer")
    handled = [await consumer.step() for _ in range(7)]
    assert handled == [0] * 6 + [1] and effects == ["out#1"]  # refused on every delivery but the seventh
    assert await conn.xlen(f"{stream}.dead") == 0 and await consumer.pending() == 0
    warnings = [r for r in caplog.records if r.name == "server.events.redis_consumer" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, "one warning for the outage"
