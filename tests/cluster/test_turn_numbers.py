"""Turn numbers of one session served by two cores on one PostgreSQL (two history stores and
counters in one process, each with its own engine as a core has): allocated in the database,
never twice, and a core's cached context does not miss the other core's turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.dialog.history import DialogTurnRow, HistoryStore, upgrade_schema
from server.dialog.turn_counter import TurnCounter
from server.storage.db import Database, sqlite_url


async def _database(url: str) -> Database:
    db = Database(url)
    await asyncio.to_thread(db.create_all)
    await asyncio.to_thread(upgrade_schema, db.engine)
    return db


@pytest.fixture
async def two_cores(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first = await _database(pg_url)
    second = await _database(pg_url)
    yield first, second
    first.dispose()
    second.dispose()


async def _turns(counter: TurnCounter, store: HistoryStore, session: str, n: int) -> list[int]:
    """`n` turns one after the other, as one Converse stream asks them."""
    counter.open(session)
    numbers = []
    for i in range(n):
        index = await counter.next(session)
        await store.add_user(session, index, f"q{i}")
        await store.add_assistant(session, index, f"a{i}", False, "")
        numbers.append(index)
    counter.close(session)
    return numbers


async def test_two_cores_racing_on_one_session_never_share_a_number(two_cores: tuple[Database, Database]) -> None:
    stores = [HistoryStore(db, shared=True) for db in two_cores]
    counters = [TurnCounter(store) for store in stores]
    got = await asyncio.gather(*(_turns(c, s, "s", 40) for c, s in zip(counters, stores, strict=True)))
    numbers = got[0] + got[1]
    assert sorted(numbers) == list(range(1, 81))  # distinct and without gaps: every turn stored
    assert all(a < b for a, b in zip(got[0], got[0][1:], strict=False))  # increasing within each stream

    def counted(s: Session) -> tuple[int, int]:
        rows = select(func.count(DialogTurnRow.id), func.count(func.distinct(DialogTurnRow.turn_index)))
        total, distinct = s.execute(rows.where(DialogTurnRow.role == "user")).one()
        return int(total), int(distinct)

    assert await two_cores[0].run(counted) == (80, 80)


async def test_per_process_numbering_is_what_collides(two_cores: tuple[Database, Database]) -> None:
    """Why the database allocates in a cluster: two processes numbering alone hand out one number twice."""
    counters = [TurnCounter(HistoryStore(db)) for db in two_cores]
    assert [await c.next("s") for c in counters] == [1, 1]


async def test_a_core_sees_the_turns_another_core_answered(two_cores: tuple[Database, Database]) -> None:
    one, two = (HistoryStore(db, shared=True) for db in two_cores)
    count_one, count_two = TurnCounter(one), TurnCounter(two)
    await _turns(count_one, one, "s", 1)
    assert [m.content for m in await one.context("s")] == ["q0", "a0"]  # cached on core 1 now
    await _turns(count_two, two, "s", 1)  # the device moved: core 2 answered turn 2
    assert await count_one.next("s") == 3
    assert [m.content for m in await one.context("s")] == ["q0", "a0", "q0", "a0"]  # turn 2 read back


async def test_allocation_continues_after_rows_numbered_by_one_process(tmp_path: Path) -> None:
    """A session numbered by a single core (no counter row) continues after its highest turn; on SQLite too."""
    db = await _database(sqlite_url(tmp_path, "alone"))
    try:
        alone = HistoryStore(db)
        await _turns(TurnCounter(alone), alone, "s", 3)
        shared = HistoryStore(db, shared=True)
        assert [await shared.allocate_turn("s") for _ in range(2)] == [4, 5]
    finally:
        db.dispose()
