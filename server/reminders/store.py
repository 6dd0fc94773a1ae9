"""Reminder tables: the reminders themselves and the append-only trigger log.

The trigger log is what makes delivery exact: one row per occurrence (unique
reminder id + due time), its autoincrement key is the relay cursor, and a
reminder's `checked_until` moves in the same transaction as its rows, so an
occurrence is logged once whether the process dies before or after firing.
Cursors become visible in order: writers append one at a time (SQLite's write
lock; an advisory transaction lock on PostgreSQL, see `serialize_appends`), so
a reader that has seen cursor N never later finds a committed row below N.

`DeviceCursorRow` is each device's delivery state: the highest cursor it has
acknowledged (cumulatively). A device that reconnects is replayed the log
after it; `LeaseRow` names the one instance whose scheduler runs the clock.
Times are stored as naive UTC (portable across SQLite and PostgreSQL); the rows hold them aware
(`UtcDateTime(timezone=False)`, server/storage/utc.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.reminders.schedule import Schedule, cron_from_text, cron_text
from server.storage.db import Base
from server.storage.utc import UtcDateTime

State = Literal["active", "done", "cancelled"]
Status = Literal["fired", "missed"]


_Utc = UtcDateTime(timezone=False)  # the tables were created WITHOUT TIME ZONE: naive UTC on disk


class ReminderRow(Base):
    __tablename__ = "reminder"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    due_time: Mapped[datetime | None] = mapped_column(_Utc, nullable=True)
    cron: Mapped[str | None] = mapped_column(String(200), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64))
    targets: Mapped[str] = mapped_column(Text, default="[]")
    state: Mapped[str] = mapped_column(String(16), index=True)
    checked_until: Mapped[datetime] = mapped_column(_Utc)
    created_at: Mapped[datetime] = mapped_column(_Utc)

    def schedule(self) -> Schedule:
        if self.cron:
            return Schedule(self.timezone, cron=cron_from_text(self.cron))
        assert self.due_time is not None
        return Schedule(self.timezone, due_time=self.due_time)


class TriggerRow(Base):
    __tablename__ = "reminder_trigger"
    __table_args__ = (UniqueConstraint("reminder_id", "due_time", name="uq_reminder_trigger_occurrence"),
                      Index("ix_reminder_trigger_reminder", "reminder_id"),
                      {"sqlite_autoincrement": True})

    cursor: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reminder_id: Mapped[str] = mapped_column(String(36))
    content: Mapped[str] = mapped_column(Text)
    due_time: Mapped[datetime] = mapped_column(_Utc)
    fired_time: Mapped[datetime] = mapped_column(_Utc)
    status: Mapped[str] = mapped_column(String(16))
    targets: Mapped[str] = mapped_column(Text, default="[]")


class DeviceCursorRow(Base):
    """How far one device has acknowledged the trigger log."""

    __tablename__ = "reminder_device_cursor"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(_Utc)


class LeaseRow(Base):
    """A named lease: who holds it and until when (the scheduler leader among instances on one database)."""

    __tablename__ = "reminder_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300))
    expires_at: Mapped[datetime] = mapped_column(_Utc)


TABLES: list[Table] = [cast(Table, t.__table__) for t in (ReminderRow, TriggerRow, DeviceCursorRow, LeaseRow)]

# Any constant key: every writer of the trigger log takes the same PostgreSQL advisory lock.
_APPEND_LOCK_KEY = 0x7065726F  # "pero"


def serialize_appends(s: Session) -> None:
    """Make trigger-log appends take turns until commit, so cursor order is commit order.

    A PostgreSQL sequence hands out values at insert time, not at commit: two
    writers could commit 6 before 5, and a relay that saw 6 would skip 5.
    Holding one transaction-scoped advisory lock from before the insert until
    commit rules that out. SQLite needs nothing: its write lock already does it.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})


@dataclass(frozen=True)
class Reminder:
    """A reminder as the in-process API returns it (times aware UTC)."""

    id: str
    content: str
    schedule: Schedule
    target_devices: tuple[str, ...]
    state: State
    next_due_time: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: ReminderRow) -> Reminder:
        schedule = row.schedule()
        state: State = row.state  # type: ignore[assignment]
        nxt = schedule.next_after(row.checked_until) if state == "active" else None
        return cls(row.id, row.content, schedule, tuple(json.loads(row.targets)), state, nxt,
                   row.created_at)

    def as_data(self) -> dict[str, Any]:
        """JSON-ready form (the `data` of a `schedule_update` broadcast)."""
        s = self.schedule
        return {"id": self.id, "content": self.content, "state": self.state, "timezone": s.timezone,
                "due_time": s.due_time.isoformat() if s.due_time else None,
                "cron": cron_text(s.cron) if s.cron else None,
                "next_due_time": self.next_due_time.isoformat() if self.next_due_time else None,
                "target_devices": list(self.target_devices), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Trigger:
    """One logged occurrence; `cursor` orders the log."""

    cursor: int
    reminder_id: str
    content: str
    due_time: datetime
    fired_time: datetime
    status: Status
    target_devices: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_row(cls, row: TriggerRow) -> Trigger:
        status: Status = row.status  # type: ignore[assignment]
        return cls(row.cursor, row.reminder_id, row.content, row.due_time, row.fired_time,
                   status, tuple(json.loads(row.targets)))

    def for_device(self, device_id: str | None) -> bool:
        return not device_id or not self.target_devices or device_id in self.target_devices

    def as_action(self) -> dict[str, Any]:
        """The gateway `reminder_trigger` payload (PeroCore's field names, plus cursor/status/targets)."""
        return {"id": self.reminder_id, "content": self.content, "due_time": self.due_time.isoformat(),
                "fired_time": self.fired_time.isoformat(), "status": self.status, "cursor": self.cursor,
                "target_devices": list(self.target_devices)}


@dataclass(frozen=True)
class CaughtUp:
    """Marks the end of a replayed backlog on a watch stream."""

    cursor: int


@dataclass(frozen=True)
class ScheduleUpdate:
    """A change to the set of reminders (the gateway `schedule_update` {operation, data})."""

    operation: Literal["create", "cancel", "done"]
    data: dict[str, Any]

    def as_action(self) -> dict[str, Any]:
        return {"operation": self.operation, "data": json.dumps(self.data, ensure_ascii=False)}
