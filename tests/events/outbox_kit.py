"""Test kit for the event path: an outbox database, adding events, and deterministic database faults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

from server.events import outbox
from server.storage.db import Database, sqlite_url

REDIS_URL = "redis://127.0.0.1:6379/0"


def db_at(path: Path) -> Database:
    db = Database(sqlite_url(path, "events"))
    db.create_all()
    return db


async def add(db: Database, *events: outbox.OutboxEvent) -> None:
    await db.run(lambda s: s.add_all(list(events)))


class FailingStatements:
    """Makes the next `times` SQL statements matching `when` fail, as a lost database would.

    The driver's own `OperationalError` is raised where the driver would raise
    it (before the cursor executes), so SQLAlchemy wraps it into the same
    `OperationalError` a real outage produces, on SQLite and PostgreSQL
    alike. `hits` counts the failures injected so far.
    """

    def __init__(self, db: Database, times: int, when: Callable[[str], bool] = lambda _sql: True) -> None:
        self.remaining, self.when, self.hits = times, when, 0
        self._error: type[Exception] = db.engine.dialect.loaded_dbapi.OperationalError
        event.listen(db.engine, "before_cursor_execute", self._maybe_fail)

    def _maybe_fail(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.remaining > 0 and self.when(statement):
            self.remaining -= 1
            self.hits += 1
            raise self._error("injected: the database went away")
