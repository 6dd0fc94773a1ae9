"""The outbox relay outlives database failures, prunes what it delivered, and shows its backlog."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.metrics import CallbackOptions
from sqlalchemy import select

from server.app.core import events_config
from server.cli import parse_serve
from server.events import outbox
from server.events.bus import InProcessBus
from server.events.config import EventsConfig
from server.events.dedupe import MemoryDedupe, idempotent
from server.events.pipeline import start_pipeline
from server.events.relay import OutboxRelay, _observe_backlog
from server.storage.db import Database
from tests.events.outbox_kit import FailingStatements, add, db_at

FAST = EventsConfig(retry_base_s=0.01, retry_max_s=0.05)


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not reached")


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The outbox on each database the mesh supports (PostgreSQL: a fresh schema)."""
    if request.param == "sqlite":
        db = db_at(tmp_path)
    else:
        db = Database(request.getfixturevalue("pg_url"))
        db.create_all()
    yield db
    db.dispose()


async def test_relay_outlives_a_database_outage_and_delivers_each_event_once(
        outbox_db: Database, caplog: pytest.LogCaptureFixture) -> None:
    db = outbox_db
    await add(db, *(outbox.event("events.analytics", "T", f"s#{i}", {"i": i}) for i in range(5)))
    calls: list[str] = []
    effects: list[str] = []

    async def count(fields: dict[str, str]) -> None:
        effects.append(fields["correlation_id"])

    async def spy(fields: dict[str, str]) -> None:
        calls.append(fields["correlation_id"])
        await deduped(fields)

    deduped = idempotent(count, MemoryDedupe())
    bus = InProcessBus()
    bus.subscribe("events.analytics", spy)
    relay = OutboxRelay(db, bus, config=FAST)
    down = FailingStatements(db, times=3)  # the database is gone for three statements ...
    # ... then comes back, but the first attempt to record the deliveries fails: the batch is published again
    lost_record = FailingStatements(db, times=1, when=lambda sql: sql.startswith("UPDATE outbox_events"))
    caplog.set_level(logging.DEBUG, logger="server.events.relay")
    task = asyncio.get_running_loop().create_task(relay.run())
    try:
        await until(lambda: lost_record.hits == 1 and not relay.streak.failing)  # polls without the database
        assert not task.done(), "the relay never ends on its own"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert down.hits == 3 and lost_record.hits == 1
    assert await relay.backlog() == 0
    assert sorted(calls) == sorted(2 * [f"s#{i}" for i in range(5)]), "the batch was redelivered after the lost record"
    assert sorted(effects) == [f"s#{i}" for i in range(5)], "each event took effect once"
    relay_logs = [r for r in caplog.records if r.name == "server.events.relay"]
    assert [r.getMessage().split(",")[0] for r in relay_logs if r.levelno == logging.WARNING] == [
        "outbox relay failing"], "one warning for the whole streak"
    assert any("recovered after 4 failures" in r.getMessage() for r in relay_logs if r.levelno == logging.INFO)


async def test_delivered_events_are_pruned_after_the_retention_only(outbox_db: Database) -> None:
    db = outbox_db
    now = datetime.now(UTC)
    old_done = outbox.event("events.ltm", "T", "s#1", {})
    old_done.delivered_at = now - timedelta(days=8)
    fresh_done = outbox.event("events.ltm", "T", "s#2", {})
    fresh_done.delivered_at = now - timedelta(days=6)
    old_undelivered = outbox.event("events.ltm", "T", "s#3", {})  # never deleted, however old
    old_undelivered.created_at = now - timedelta(days=30)
    old_undelivered.next_attempt_at = now + timedelta(hours=1)
    await add(db, old_done, fresh_done, old_undelivered)
    relay = OutboxRelay(db, InProcessBus(), config=EventsConfig(outbox_retention=timedelta(days=7)))
    assert await relay.cycle() == 0  # the first cycle prunes
    left = await db.run(lambda s: sorted(r.correlation_id for r in s.scalars(select(outbox.OutboxEvent))))
    assert left == ["s#2", "s#3"]
    assert await relay.prune() == 0


async def test_backlog_is_a_gauge_refreshed_by_the_cycles(tmp_path: Path) -> None:
    db = db_at(tmp_path)
    bus = InProcessBus()

    async def down(fields: dict[str, str]) -> None:
        raise ConnectionError("memory is down")

    bus.subscribe("events.ltm", down)
    relay = OutboxRelay(db, bus, config=FAST)

    def gauge() -> float:
        return sum(o.value for o in _observe_backlog(CallbackOptions()))

    before = gauge()
    await add(db, outbox.event("events.ltm", "T", "s#1", {}), outbox.event("events.ltm", "T", "s#2", {}))
    assert await relay.cycle() == 0
    assert relay.last_backlog == 2 == await relay.backlog()
    assert gauge() == before + 2
    db.dispose()


def test_config_flag_sets_the_retention() -> None:
    assert events_config(parse_serve([])) == EventsConfig()
    assert events_config(parse_serve(["--events-outbox-retention-hours", "2"])).outbox_retention == timedelta(hours=2)
    with pytest.raises(ValueError):
        EventsConfig(outbox_retention=timedelta(hours=-1))


async def test_stopping_with_the_database_down_keeps_the_rows_and_raises_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = db_at(tmp_path)
    await add(db, outbox.event("events.analytics", "T", "s#1", {}))
    down = FailingStatements(db, times=1_000_000, when=lambda sql: "FROM outbox_events" in sql)
    pipeline = await start_pipeline(db, None, None, config=FAST)
    await pipeline.stop()
    assert down.hits >= 1 and any("last hand-over before stopping failed" in r.getMessage() for r in caplog.records)
    down.remaining = 0
    assert await OutboxRelay(db, InProcessBus()).backlog() == 1  # still there for the next start
    db.dispose()


async def test_a_refusing_consumer_is_one_warning_per_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = db_at(tmp_path)
    bus = InProcessBus()
    refusals = 9  # three events refused in each of three passes

    async def memory(fields: dict[str, str]) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise ConnectionError("memory is down")

    bus.subscribe("events.ltm", memory)
    relay = OutboxRelay(db, bus, max_backoff_s=0.0)
    await add(db, *(outbox.event("events.ltm", "T", f"s#{i}", {}) for i in range(3)))
    caplog.set_level(logging.DEBUG, logger="server.events.relay")
    assert [await relay.relay_once() for _ in range(4)] == [0, 0, 0, 3]
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "server.events.relay" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "events.ltm failing" in warnings[0]
    assert any("events.ltm recovered after 9 failures" in r.getMessage() for r in caplog.records)
    db.dispose()
