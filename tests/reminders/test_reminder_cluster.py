"""Several ReminderService instances on one PostgreSQL database (the cores of a cluster).

- Two writers committing triggers concurrently: a watcher on either sees every
  occurrence once, in cursor order (the log's appends take turns until commit).
- Two instances sharing one job table: one leads the clock (the lease), each
  occurrence is logged once, and when the leader dies the other takes over and
  fires what falls due afterwards.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from server.reminders.service import ReminderService
from server.reminders.store import Trigger, TriggerRow, serialize_appends


async def collect(service: ReminderService, count: int, wait_s: float = 30.0) -> list[Trigger]:
    got: list[Trigger] = []
    async with asyncio.timeout(wait_s):
        async for event in service.watch(0, poll_s=0.2):
            if isinstance(event, Trigger):
                got.append(event)
                if len(got) == count:
                    return got
    raise AssertionError("watch ended")


async def logged(service: ReminderService) -> list[tuple[int, str]]:
    return await service._db().run(lambda s: [tuple(r) for r in s.execute(
        select(TriggerRow.cursor, TriggerRow.reminder_id).order_by(TriggerRow.cursor))])


async def test_relay_sees_every_occurrence_once_in_order_with_two_concurrent_writers(pg_url: str) -> None:
    a, b = ReminderService(), ReminderService()
    await a.open(pg_url, jobs_table="jobs_a")  # two clocks, one log: both write it at the same moments
    await b.open(pg_url, jobs_table="jobs_b")
    try:
        assert a.is_leader and b.is_leader
        watchers = [asyncio.ensure_future(collect(s, 40)) for s in (a, b)]
        await asyncio.sleep(0.3)  # both watchers are past their (empty) backlog
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        made = []
        for i in range(10):
            for service in (a, b):
                made.append(await service.create(content=f"t{i}", due_time=at))
                made.append(await service.create(content=f"u{i}", due_time=at + timedelta(seconds=0.4)))
        seen_a, seen_b = await asyncio.gather(*watchers)
        log = await logged(a)
    finally:
        await b.stop()
        await a.stop()
    assert len(log) == 40 and {r for _, r in log} == {m.id for m in made}
    for seen in (seen_a, seen_b):
        assert [(t.cursor, t.reminder_id) for t in seen] == log  # each once, in cursor order


async def test_two_instances_fire_each_occurrence_once_and_the_survivor_takes_over(pg_url: str) -> None:
    first, second = ReminderService(), ReminderService()
    await first.open(pg_url, lease_s=1.0)
    await second.open(pg_url, lease_s=1.0)
    try:
        assert [first.is_leader, second.is_leader] == [True, False]
        before = [await s.create(content=f"from {i}", delay=timedelta(seconds=0.6))
                  for i, s in enumerate((first, second, second))]
        async with asyncio.timeout(15):
            while len(await logged(first)) < 3:  # noqa: ASYNC110 - a database read: no event to wait on
                await asyncio.sleep(0.05)
        # The leader dies (in-process stand-in for kill -9: its clock and lease keeper stop, the
        # lease is not released; tests/chaos kills a real process).
        await first._tasks.close()
        assert first._scheduler is not None
        await asyncio.to_thread(first._scheduler.pause)
        first.is_leader = False
        after = await second.create(content="after the death", delay=timedelta(seconds=0.3))
        async with asyncio.timeout(15):
            while len(await logged(second)) < 4:  # noqa: ASYNC110 - a database read: no event to wait on
                await asyncio.sleep(0.05)
        assert second.is_leader
        log = await logged(second)
    finally:
        await second.stop()
        await first.stop()
    counts = Counter(r for _, r in log)
    assert counts == Counter({m.id: 1 for m in [*before, after]})


async def test_a_second_log_writer_waits_until_the_first_commits(pg_url: str) -> None:
    """The mechanism behind the order: cursor 6 cannot commit while cursor 5 is still open."""
    service = ReminderService()
    await service.open(pg_url)
    db = service._db()
    now = datetime.now(UTC)
    first = db.sessions()
    try:
        first.begin()
        serialize_appends(first)
        row = TriggerRow(reminder_id="r1", content="a", due_time=now, fired_time=now, status="fired")
        first.add(row)
        first.flush()  # cursor assigned, not committed

        def second_writer() -> int:
            with db.sessions.begin() as s:
                serialize_appends(s)
                other = TriggerRow(reminder_id="r2", content="b", due_time=now, fired_time=now, status="fired")
                s.add(other)
                s.flush()
                return other.cursor

        second = asyncio.ensure_future(asyncio.to_thread(second_writer))
        async with asyncio.timeout(10):  # the second writer is queued on the lock, not past it
            while not await db.run(lambda s: s.scalar(text(  # noqa: ASYNC110 - a database read
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))):
                await asyncio.sleep(0.02)
        assert not second.done() and await logged(service) == []
        first.commit()
        second_cursor = await second
    finally:
        first.close()
        await service.stop()
    assert row.cursor < second_cursor
