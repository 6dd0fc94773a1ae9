"""The one datetime column type: aware UTC in Python, on every backend, for old rows too.

Every table stores instants in UTC. What differs is only the SQL type a table
was created with, which an existing database keeps:

- `UtcDateTime()`: TIMESTAMP WITH TIME ZONE (memory, dialog history, outbox).
- `UtcDateTime(timezone=False)`: TIMESTAMP WITHOUT TIME ZONE holding naive UTC
  (reminders, tasks: their tables were created that way, so the SQL type stays).

SQLite has no time zones: both store the naive UTC wall clock, as before.
Writes must be aware (a naive datetime has no defined instant and is
refused) and are converted to UTC; reads come back aware UTC whatever the
driver hands over (naive from SQLite and the WITHOUT TIME ZONE columns, or an
aware value in the session's zone from PostgreSQL), so callers compare and
subtract them with `datetime.now(UTC)` directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime column; `timezone` chooses the SQL type (see the module docstring)."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=timezone)
        self.timezone = timezone  # part of the statement cache key (cache_ok)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" or not self.timezone else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
