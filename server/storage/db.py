"""SQLAlchemy engines: SQLite in WAL mode by default, any SQLAlchemy URL allowed.

SQLite is tuned so a kill -9 loses nothing that was committed (WAL +
synchronous=NORMAL is durable per transaction across process crashes) and so
readers never block the single writer. Blocking calls are made through
`Database.run` (one transaction each) or `Database.grouped` (group commit) so
they stay off the event loop.

Group commit (`grouped`): the turn's small writes (a turn number, a question,
an answer with its events, the relay's bookkeeping) cost far more in
transaction overhead (BEGIN, COMMIT, a pool checkout, a thread hop) than in
the statements themselves. While `lanes` group transactions are in flight,
the next callers queue; the first lane free runs them together in one
transaction, each caller's future resolved only after that commit, so
"committed when the await returns" holds exactly as with `run`. If the group
fails, every item is run again in a transaction of its own, so one failing
item fails only its own caller. Under low load a group is one item and costs
what `run` costs. Lanes: several on a server database (a group's round trips
then overlap with another's, so one slow group does not hold every writer
back), one on SQLite (one writer at a time anyway). Groups in different lanes
commit in no particular order: callers that need an order await each other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

T = TypeVar("T")
MAX_GROUP = 32  # items in one group transaction (a bound on its size and on how long a group holds its locks)
SERVER_LANES = 2  # group transactions in flight at once on a server database (the pool holds 5 + 10)


class Base(DeclarativeBase):
    """Declarative base for every PeroMesh table (one metadata, many servers)."""


def sqlite_url(data_dir: Path, name: str) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / f'{name}.db'}"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


@dataclass
class _Item(Generic[T]):
    """One caller's work in a group, and the future its caller awaits."""

    fn: Callable[[Session], T]
    future: asyncio.Future[T]


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class Database:
    """An engine plus a session factory; `run` and `grouped` execute blocking work in a thread."""

    def __init__(self, url: str, max_group: int = MAX_GROUP, lanes: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.max_group = max_group
        self.lanes = lanes or (1 if self.engine.dialect.name == "sqlite" else SERVER_LANES)
        # Bounded by the callers: each queued item has a caller awaiting it.
        self._queued: deque[_Item[Any]] = deque()
        self._committers: set[asyncio.Task[None]] = set()
        self.groups = 0  # group transactions committed or tried (for tests and benchmarks)

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread inside one transaction."""
        return await asyncio.to_thread(self._in_transaction, fn)

    async def grouped(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a transaction shared with the callers queued meanwhile (group commit).

        Returns once that transaction committed. `fn` may run twice: a second time in a
        transaction of its own when its group failed, so it must build what it writes inside
        (ORM objects passed in are reset to pending for the retry). Cancellation, as with
        `run`: work not yet started is skipped, work started completes."""
        loop = asyncio.get_running_loop()
        item: _Item[T] = _Item(fn, loop.create_future())
        self._queued.append(item)
        self._committers = {task for task in self._committers if not task.done()}
        if len(self._committers) < self.lanes:
            self._committers.add(loop.create_task(self._commit_queued(), name="db:group-commit"))
        return await item.future

    async def _commit_queued(self) -> None:
        """One lane: commit queued work group after group until the queue is empty."""
        while self._queued:
            group = [self._queued.popleft() for _ in range(min(len(self._queued), self.max_group))]
            group = [item for item in group if not item.future.cancelled()]
            if not group:
                continue
            try:
                outcomes = await asyncio.to_thread(self._in_group, [item.fn for item in group])
            except BaseException as exc:  # the loop is going away: nobody is left to resolve them
                for item in (i for i in group if not i.future.done()):
                    if isinstance(exc, asyncio.CancelledError):
                        item.future.cancel()
                    else:
                        item.future.set_exception(exc)
                raise
            for item, outcome in zip(group, outcomes, strict=True):
                if item.future.done():
                    continue
                if outcome.error is not None:
                    item.future.set_exception(outcome.error)
                else:
                    item.future.set_result(outcome.value)

    def _in_group(self, fns: Sequence[Callable[[Session], Any]]) -> list[_Outcome]:
        self.groups += 1
        if len(fns) == 1:
            return [self._alone(fns[0])]
        added: list[tuple[object, list[tuple[str, Any]]]] = []
        try:
            with self.sessions.begin() as session:
                values = []
                for fn in fns:
                    values.append(fn(session))
                    added += [(obj, _primary_key(obj)) for obj in session.new]
                    session.flush()  # each item's statements reach the database before the next item's
            return [_Outcome(value) for value in values]
        except Exception:
            for obj, key in added:  # pending again, as before the failed group flushed them
                for attr, value in key:
                    setattr(obj, attr, value)
            return [self._alone(fn) for fn in fns]

    def _alone(self, fn: Callable[[Session], Any]) -> _Outcome:
        try:
            return _Outcome(self._in_transaction(fn))
        except Exception as exc:
            return _Outcome(error=exc)

    def _in_transaction(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return fn(session)

    def dispose(self) -> None:
        self.engine.dispose()


def _primary_key(obj: object) -> list[tuple[str, Any]]:
    """A pending object's primary-key attributes as given (usually None, before the flush assigns them)."""
    mapper = inspect(obj).mapper
    return [(attr.key, getattr(obj, attr.key)) for attr in mapper.column_attrs
            if any(column.primary_key for column in attr.columns)]
