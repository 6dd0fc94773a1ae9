"""kill -9 between publishing and recording: the batch is published again, and consumers count it once."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import redis.asyncio as redis

from server.events import outbox
from server.events.bus import InProcessBus
from server.events.dedupe import RedisDedupe, idempotent
from server.events.redis_consumer import StreamConsumer
from server.events.relay import OutboxRelay
from server.failpoints import ENV, EXIT_CODE
from server.storage.db import Database
from tests.events.outbox_kit import REDIS_URL, add, db_at

RELAY_ONCE = """
import asyncio, sys
from server.events.bus import RedisStreamsBus
from server.events.relay import OutboxRelay
from server.storage.db import Database

async def main() -> None:
    db, bus = Database(sys.argv[1]), RedisStreamsBus(sys.argv[2])
    print(await OutboxRelay(db, bus).relay_once())
    await bus.close()

asyncio.run(main())
"""


async def relay_in_child(db: Database, failpoints: str) -> tuple[int, str]:
    env = {**os.environ, ENV: failpoints}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", RELAY_ONCE, db.url, REDIS_URL, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 120)
    return int(child.returncode or 0), out.decode() + err.decode()


async def test_a_relay_killed_before_recording_republishes_and_each_event_counts_once(tmp_path: Path) -> None:
    stream = f"test.crash.{uuid.uuid4().hex[:10]}"
    db = db_at(tmp_path)
    await add(db, *(outbox.event(stream, "TurnFinished", f"c#{i}", {"i": i}) for i in range(4)))
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    effects: list[str] = []

    async def count(fields: dict[str, str]) -> None:
        effects.append(fields["correlation_id"])

    consumer = StreamConsumer(client, stream, "g", "c1", idempotent(count, RedisDedupe(
        client, f"{stream}:dedupe", timedelta(minutes=5))), block_ms=50)
    try:
        await consumer.ensure_group()
        code, output = await relay_in_child(db, "relay.after_publish")
        assert code == EXIT_CODE and "relay.after_publish" in output
        assert await client.xlen(stream) == 4 and await OutboxRelay(db, InProcessBus()).backlog() == 4
        code, output = await relay_in_child(db, "")
        assert code == 0 and output.split()[0] == "4", output
        assert await client.xlen(stream) == 8  # the whole batch went out twice ...
        while await consumer.step():
            pass
        assert sorted(effects) == [f"c#{i}" for i in range(4)]  # ... and took effect once
        assert await consumer.pending() == 0 and consumer.handled == 8
        assert await OutboxRelay(db, InProcessBus()).backlog() == 0
    finally:
        keys = [k async for k in client.scan_iter(f"{stream}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        db.dispose()
