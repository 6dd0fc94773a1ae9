"""Outbox → relay → bus → consumers: in-process and over real Redis Streams."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis
from meshkit import Conversation, start_test_mesh
from sqlalchemy import select

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.dialog.history import DialogTurnRow
from server.events import outbox
from server.events.bus import InProcessBus, RedisStreamsBus
from server.events.redis_consumer import StreamConsumer
from server.events.relay import OutboxRelay
from server.rpc.channels import open_channel
from tests.events.outbox_kit import REDIS_URL, add, db_at


async def test_turn_commits_its_events_with_the_answer(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="ev", text_only=True)
            talk.say("remember that I like jasmine tea")
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
        pipeline = mesh.core.events
        for _ in range(100):
            if await pipeline.relay.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        db = pipeline.relay.db
        rows = await db.run(lambda s: list(s.scalars(select(outbox.OutboxEvent).order_by(outbox.OutboxEvent.id))))
        answer = await db.run(lambda s: s.scalar(select(DialogTurnRow).where(DialogTurnRow.role == "assistant")))
    finally:
        await mesh.stop()
    assert {(r.stream, r.event_type) for r in rows} == {("events.analytics", "TurnFinished"),
                                                         ("events.ltm", "LtmWriteRequested")}
    assert all(r.correlation_id == "ev#1" and r.delivered_at is not None for r in rows)
    ltm = json.loads(next(r.payload for r in rows if r.stream == "events.ltm"))
    assert ltm["user_text"] == "remember that I like jasmine tea" and ltm["assistant_text"] == answer.text


async def test_failed_consumer_keeps_the_event_until_it_succeeds(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    bus = InProcessBus()
    calls: list[str] = []

    async def flaky(fields: dict[str, str]) -> None:
        calls.append(fields["correlation_id"])
        if len(calls) == 1:
            raise ConnectionError("memory is down")

    bus.subscribe("events.ltm", flaky)
    relay = OutboxRelay(db, bus, max_backoff_s=0.0)
    await add(db, outbox.event("events.ltm", "LtmWriteRequested", "s#1", {"x": 1}))
    assert await relay.relay_once() == 0 and await relay.backlog() == 1
    row = await db.run(lambda s: s.scalar(select(outbox.OutboxEvent)))
    assert row.attempts == 1 and "memory is down" in row.last_error
    assert await relay.relay_once() == 1 and await relay.backlog() == 0
    assert calls == ["s#1", "s#1"]
    db.dispose()


async def test_relay_to_real_redis_and_consumer_group_with_retry(tmp_path: Path) -> None:
    stream = f"test.events.{uuid.uuid4().hex[:8]}"
    db = db_at(tmp_path)
    bus = RedisStreamsBus(REDIS_URL)
    relay = OutboxRelay(db, bus)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    seen: list[str] = []

    async def handler(fields: dict[str, str]) -> None:
        seen.append(fields["correlation_id"])
        if fields["correlation_id"] == "s#2" and seen.count("s#2") == 1:
            raise RuntimeError("transient")

    consumer = StreamConsumer(client, stream, "g", "c1", handler, block_ms=50, retry_idle_ms=0)
    try:
        await consumer.ensure_group()
        await add(db, *(outbox.event(stream, "T", f"s#{i}", {"i": i}) for i in range(1, 4)))
        assert await relay.relay_once() == 3 and await relay.backlog() == 0
        assert await client.xlen(stream) == 3
        await consumer.step()  # s#2 fails once and stays pending
        assert await consumer.pending() == 1
        await consumer.step()  # reclaimed and handled
        assert await consumer.pending() == 0
        assert seen == ["s#1", "s#2", "s#3", "s#2"] and consumer.handled == 3
    finally:
        await client.delete(stream, f"{stream}.dead")
        await client.aclose()
        await bus.close()
        db.dispose()


async def test_poison_event_is_dead_lettered(tmp_path: Path) -> None:
    stream = f"test.events.{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)

    async def broken(fields: dict[str, str]) -> None:
        raise ValueError("never works")

    consumer = StreamConsumer(client, stream, "g", "c1", broken, block_ms=50, retry_idle_ms=0, max_deliveries=3,
                              dead_after_s=0.0)
    try:
        await consumer.ensure_group()
        await client.xadd(stream, {"correlation_id": "s#9", "payload": "{}"})
        for _ in range(4):
            await consumer.step()
        assert await consumer.pending() == 0
        dead = await client.xrange(f"{stream}.dead")
        assert len(dead) == 1 and dead[0][1]["error"] == "never works"
    finally:
        await client.delete(stream, f"{stream}.dead")
        await client.aclose()


async def test_redis_down_keeps_events_in_the_outbox(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    db = db_at(tmp_path)
    bus = RedisStreamsBus(f"redis://127.0.0.1:{dead_port}/0")
    relay = OutboxRelay(db, bus, max_backoff_s=0.0)
    await add(db, outbox.event("events.analytics", "T", "s#1", {}))
    assert await relay.relay_once() == 0 and await relay.backlog() == 1
    await bus.close()
    relay.bus = RedisStreamsBus(REDIS_URL)  # Redis is back
    stream_len_before = await relay.bus.client.xlen("events.analytics")  # type: ignore[attr-defined]
    assert await relay.relay_once() == 1 and await relay.backlog() == 0
    assert await relay.bus.client.xlen("events.analytics") == stream_len_before + 1  # type: ignore[attr-defined]
    await relay.bus.close()
    db.dispose()


@pytest.mark.parametrize("use_redis", [True])
async def test_core_with_redis_streams_end_to_end(data_dir: Path, use_redis: bool) -> None:
    mesh = await start_test_mesh(data_dir, "--events-redis-url", REDIS_URL, "--scripted-delay-ms", "1",
                                 only=["core"])
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    session = f"rs-{uuid.uuid4().hex[:6]}"
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id=session, text_only=True)
            talk.say("hello")
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
        found = []
        for _ in range(100):
            entries = await client.xrevrange("events.analytics", count=50)
            found = [f for _, f in entries if f.get("correlation_id") == f"{session}#1"]
            if found:
                break
            await asyncio.sleep(0.05)
        assert found and found[0]["type"] == "TurnFinished"
        consumer = mesh.core.events.consumers[0]
        for _ in range(100):
            if consumer.handled and await consumer.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert await consumer.pending() == 0
    finally:
        await client.aclose()
        await mesh.stop()
