"""TaskService: the shared to-do list, persisted, every change fanned out.

In-process API (for the bridge's `task:add`/`task:complete`/list actions and
`task:update` broadcasts, and the dialog's `add_task` tool):
  await svc.add(title, notes="", due_time=None) -> Task
  await svc.complete(task_id) / svc.reopen(task_id) / svc.delete(task_id) -> Task   (TaskNotFound)
  await svc.list_tasks(include_completed=False) -> list[Task]
  await svc.add_task(title, notes="") -> Task                                       # the LLM tool
  ADD_TASK_TOOL (JSON schema), await svc.call_add_task_tool(args) -> dict
  svc.changes() -> Subscription[TaskChange]        # TaskChange.as_action() is the `task:update` payload
Completing a completed task (or reopening an open one) is a no-op without an event.

This is the domain only (no grpc, no flags, no mesh): the gRPC mapping is
servicer.py, and hosting it on the core (flags, binding) is wiring.py.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Boolean, String, Table, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.fanout import Fanout, Subscription
from server.storage.db import Base, Database
from server.storage.utc import UtcDateTime

Operation = Literal["snapshot", "added", "completed", "reopened", "deleted"]


class TaskRow(Base):
    __tablename__ = "task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    completed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # Created WITHOUT TIME ZONE (naive UTC on disk); the rows hold aware UTC (server/storage/utc.py).
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(timezone=False))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(timezone=False))
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(timezone=False), nullable=True)
    due_time: Mapped[datetime | None] = mapped_column(UtcDateTime(timezone=False), nullable=True)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    notes: str
    completed: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    due_time: datetime | None

    @classmethod
    def from_row(cls, row: TaskRow) -> Task:
        return cls(row.id, row.title, row.notes, row.completed, row.created_at, row.updated_at, row.completed_at,
                   row.due_time)

    def as_data(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "notes": self.notes, "completed": self.completed,
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "completed_at": _iso(self.completed_at), "due_time": _iso(self.due_time)}


@dataclass(frozen=True)
class TaskChange:
    operation: Operation
    task: Task

    def as_action(self) -> dict[str, Any]:
        """The gateway `task:update` payload."""
        return {"operation": self.operation, "task": self.task.as_data()}


# The LLM tool (built-in; the hub lists it next to device capabilities).
ADD_TASK_TOOL: dict[str, Any] = {
    "name": "add_task",
    "description": "Add an item to the user's to-do list.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["title"],
                   "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 500},
                                  "notes": {"type": "string", "maxLength": 5000}}},
}


class TaskNotFound(KeyError):
    """No task has that id."""


class TaskService:
    """The task list's in-process API (open it, use it, stop it)."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self._changes: Fanout[TaskChange] = Fanout("task changes")

    async def open(self, db_url: str) -> None:
        self.db = Database(db_url)
        await asyncio.to_thread(Base.metadata.create_all, self.db.engine, tables=[cast(Table, TaskRow.__table__)])

    async def stop(self) -> None:
        if self.db is not None:
            self.db.dispose()

    # ------------------------------------------------------------ API

    async def add(self, title: str, notes: str = "", due_time: datetime | None = None) -> Task:
        title, notes = title.strip(), notes.strip()
        if not title or len(title) > 500:
            raise ValueError("title must be 1 to 500 characters")
        if len(notes) > 5000:
            raise ValueError("notes must be at most 5000 characters")
        if due_time is not None and due_time.tzinfo is None:
            raise ValueError("due_time must carry a time zone")
        now = datetime.now(UTC)
        row = TaskRow(id=uuid.uuid4().hex, title=title, notes=notes, completed=False, created_at=now,
                      updated_at=now, completed_at=None, due_time=due_time.astimezone(UTC) if due_time else None)

        def write(s: Session) -> Task:
            s.add(row)
            s.flush()
            return Task.from_row(row)

        return self._emit("added", await self._db().run(write))

    async def add_task(self, title: str, notes: str = "") -> Task:
        """The LLM tool."""
        return await self.add(title, notes)

    async def call_add_task_tool(self, args: dict[str, Any]) -> dict[str, Any]:
        """`add_task` as an LLM tool call: the task as JSON-ready data."""
        return (await self.add(str(args["title"]), str(args.get("notes", "")))).as_data()

    async def complete(self, task_id: str) -> Task:
        return await self._set_completed(task_id, True)

    async def reopen(self, task_id: str) -> Task:
        return await self._set_completed(task_id, False)

    async def delete(self, task_id: str) -> Task:
        def write(s: Session) -> Task:
            row = s.get(TaskRow, task_id)
            if row is None:
                raise TaskNotFound(task_id)
            task = Task.from_row(row)
            s.delete(row)
            return task

        return self._emit("deleted", await self._db().run(write))

    async def list_tasks(self, include_completed: bool = False) -> list[Task]:
        def read(s: Session) -> list[Task]:
            query = select(TaskRow).order_by(TaskRow.created_at, TaskRow.id)
            if not include_completed:
                query = query.where(TaskRow.completed.is_(False))
            return [Task.from_row(r) for r in s.scalars(query)]

        return await self._db().run(read)

    def changes(self) -> Subscription[TaskChange]:
        """Every change from now on."""
        return self._changes.subscribe()

    # ------------------------------------------------------------ internals

    async def _set_completed(self, task_id: str, completed: bool) -> Task:
        def write(s: Session) -> tuple[Task, bool]:
            row = s.get(TaskRow, task_id)
            if row is None:
                raise TaskNotFound(task_id)
            if row.completed == completed:
                return Task.from_row(row), False
            now = datetime.now(UTC)
            row.completed, row.updated_at, row.completed_at = completed, now, now if completed else None
            return Task.from_row(row), True

        task, changed = await self._db().run(write)
        return self._emit("completed" if completed else "reopened", task) if changed else task

    def _emit(self, operation: Operation, task: Task) -> Task:
        self._changes.publish(TaskChange(operation, task))
        return task

    def _db(self) -> Database:
        if self.db is None:
            raise RuntimeError("task service is not open")
        return self.db
