"""Group commit (Database.grouped): concurrent writers share transactions, each returns only once its
write is committed, and one failing writer fails alone (its group is retried item by item)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.db import Base, Database, sqlite_url


class GroupRow(Base):
    __tablename__ = "group_commit_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = sqlite_url(tmp_path, "group") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    database = Database(url)
    database.create_all()
    yield database
    database.dispose()


def _commits(db: Database) -> list[int]:
    counted = [0]

    def on_commit(_conn: object) -> None:
        counted[0] += 1

    event.listen(db.engine, "commit", on_commit)
    return counted


def _count(s: Session) -> int:
    return int(s.scalar(select(func.count(GroupRow.id))) or 0)


async def test_concurrent_writers_share_transactions_and_each_sees_its_commit(db: Database) -> None:
    commits = _commits(db)

    async def write(i: int) -> int:
        row = GroupRow(name=f"r{i}")
        await db.grouped(lambda s: s.add(row))
        # committed when the await returns: a separate transaction sees the row
        return await db.run(lambda s: int(s.scalar(select(func.count()).where(GroupRow.name == f"r{i}")) or 0))

    seen = await asyncio.gather(*(write(i) for i in range(50)))
    assert seen == [1] * 50 and await db.run(_count) == 50
    grouped_commits = commits[0] - 50  # each `run` read committed once too
    assert 1 <= grouped_commits < 25, grouped_commits  # far fewer transactions than writers


async def test_a_failing_writer_fails_alone(db: Database) -> None:
    await db.grouped(lambda s: s.add(GroupRow(name="taken")))
    rows = [GroupRow(name=f"ok{i}") for i in range(5)]
    writes = [db.grouped(lambda s, r=r: s.add(r)) for r in rows[:2]]  # type: ignore[misc]
    writes.append(db.grouped(lambda s: s.add(GroupRow(name="taken"))))  # violates the unique name
    writes += [db.grouped(lambda s, r=r: s.add(r)) for r in rows[2:]]  # type: ignore[misc]
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(o) for o in outcomes] == [type(None)] * 2 + [IntegrityError] + [type(None)] * 3
    names = await db.run(lambda s: sorted(s.scalars(select(GroupRow.name))))
    assert names == ["ok0", "ok1", "ok2", "ok3", "ok4", "taken"]  # the others committed, once each
    assert len({r.id for r in rows}) == 5


async def test_results_come_back_to_their_callers(db: Database) -> None:
    results = await asyncio.gather(*(db.grouped(lambda _s, i=i: i * i) for i in range(20)))  # type: ignore[misc]
    assert results == [i * i for i in range(20)]


async def test_work_cancelled_before_its_group_started_is_skipped(db: Database) -> None:
    first = asyncio.ensure_future(db.grouped(lambda s: s.add(GroupRow(name="first"))))
    await asyncio.sleep(0)  # the first group is in flight now
    second = asyncio.ensure_future(db.grouped(lambda s: s.add(GroupRow(name="second"))))
    await asyncio.sleep(0)
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await db.grouped(lambda _s: None)  # the queue moved on
    assert await db.run(lambda s: sorted(s.scalars(select(GroupRow.name)))) == ["first"]
