"""Opening a session in a cluster abandons only the questions of dead cores: two cores (two history
stores, each with its own engine, on one PostgreSQL), one answering a question while the other opens
the session (the device moved), then the first one dying mid-turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from server.dialog import history
from server.dialog.history import CoreLifeRow, DialogTurnRow, HistoryStore, upgrade_schema
from server.storage.db import Database


@pytest.fixture
async def two_cores(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    dbs = (Database(pg_url), Database(pg_url))
    await asyncio.to_thread(dbs[0].create_all)
    await asyncio.to_thread(upgrade_schema, dbs[0].engine)
    yield dbs
    for db in dbs:
        db.dispose()


async def _abandoned(db: Database, session: str) -> list[bool]:
    return list(await db.run(lambda s: s.scalars(select(DialogTurnRow.abandoned).where(
        DialogTurnRow.session_id == session, DialogTurnRow.role == "user").order_by(DialogTurnRow.turn_index))))


async def test_a_question_another_live_core_is_answering_is_not_abandoned(
        two_cores: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "LIFE_REFRESH_S", 0.1)
    monkeypatch.setattr(history, "LIFE_EXPIRY_S", 0.6)
    answering = HistoryStore(two_cores[0], shared=True)
    await answering.add_user("s", 1, "a long question")
    opening = HistoryStore(two_cores[1], shared=True)  # started after the question was stored
    await asyncio.sleep(1.0)  # longer than the expiry: the answering core's refreshes keep it alive
    assert await opening.open_session("s") == 0
    assert await _abandoned(two_cores[0], "s") == [False]
    await answering.add_assistant("s", 1, "the answer", False, "the answer")
    assert await opening.stored("s") != [] and await _abandoned(two_cores[0], "s") == [False]
    await asyncio.sleep(0.3)
    assert answering._keeper is not None and answering._keeper.done()  # nothing unanswered: refreshing stopped


async def test_the_questions_of_a_dead_core_are_abandoned(two_cores: tuple[Database, Database],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "LIFE_REFRESH_S", 0.1)
    monkeypatch.setattr(history, "LIFE_EXPIRY_S", 0.6)
    dying = HistoryStore(two_cores[0], shared=True)
    await dying.add_user("s", 1, "asked, never answered")
    assert dying._keeper is not None
    dying._keeper.cancel()  # kill -9: no more refreshes
    opening = HistoryStore(two_cores[1], shared=True)
    assert await opening.open_session("s") == 0
    assert await _abandoned(two_cores[0], "s") == [False]  # not dead yet: seen within the expiry
    await asyncio.sleep(0.8)
    assert await opening.open_session("s") == 0
    assert await _abandoned(two_cores[0], "s") == [True]
    assert await opening.stored("s") == []


async def test_a_core_never_abandons_its_own_turn_in_flight(two_cores: tuple[Database, Database]) -> None:
    store = HistoryStore(two_cores[0], shared=True)
    await store.add_user("s", 1, "mine, being answered")
    await two_cores[0].run(lambda s: s.execute(update(CoreLifeRow).values(seen_at=store.opened_at.replace(year=2000))))
    assert await store.open_session("s") == 0  # another stream of the same session opened meanwhile
    assert await _abandoned(two_cores[0], "s") == [False]
    await store.add_assistant("s", 1, "answered", False, "answered")
    await asyncio.sleep(0.05)
    assert store._keeper is not None and store._keeper.done()


async def test_rows_without_a_writer_follow_the_earlier_life_rule(two_cores: tuple[Database, Database]) -> None:
    """Questions a single process (or an older version) stored carry no writer: older than this store, abandoned."""
    await HistoryStore(two_cores[0]).add_user("s", 1, "from one process alone")
    assert await HistoryStore(two_cores[1], shared=True).open_session("s") == 0
    assert await _abandoned(two_cores[0], "s") == [True]
