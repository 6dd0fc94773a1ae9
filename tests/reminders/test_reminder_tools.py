"""The built-in LLM tools add_reminder and add_task, called as the dialog/hub would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from server.reminders.service import ADD_REMINDER_TOOL, ReminderService
from server.reminders.timeparse import TimeParseError
from server.storage.db import sqlite_url
from server.tasks.service import ADD_TASK_TOOL, TaskService


def test_tool_schemas_are_valid_json_schema() -> None:
    for tool in (ADD_REMINDER_TOOL, ADD_TASK_TOOL):
        jsonschema.Draft202012Validator.check_schema(tool["parameters"])
    jsonschema.validate({"time": "12:00", "content": "吃饭"}, ADD_REMINDER_TOOL["parameters"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"time": "12:00"}, ADD_REMINDER_TOOL["parameters"])


async def test_add_reminder_accepts_iso_and_phrases(tmp_path: Path) -> None:
    svc = ReminderService()
    await svc.open(sqlite_url(tmp_path, "r"), timezone="Asia/Shanghai")
    try:
        updates = svc.schedule_updates()
        tomorrow = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).replace(microsecond=0)
        iso = await svc.call_add_reminder_tool({"time": tomorrow.replace(tzinfo=None).isoformat(), "content": "吃饭"})
        assert datetime.fromisoformat(iso["due_time"]) == tomorrow.astimezone(UTC)
        phrase = await svc.call_add_reminder_tool({"time": "in 10 minutes", "content": "stretch"})
        assert phrase["content"] == "stretch" and phrase["cron"] is None
        weekly = await svc.add_reminder("every weekday at 9", "stand up")
        assert weekly.schedule.cron is not None and weekly.schedule.cron.day_of_week == "mon-fri"
        with pytest.raises(TimeParseError):
            await svc.add_reminder("whenever", "x")
        ops = [updates.get_nowait() for _ in range(3)]
        assert [(u.operation, u.data["content"]) for u in ops if u] == \
            [("create", "吃饭"), ("create", "stretch"), ("create", "stand up")]
        assert ops[0] is not None and set(ops[0].as_action()) == {"operation", "data"}
        assert [r.content for r in await svc.list_reminders()] == ["stand up", "stretch", "吃饭"]
    finally:
        await svc.stop()


async def test_add_task_tool(tmp_path: Path) -> None:
    svc = TaskService()
    await svc.open(sqlite_url(tmp_path, "t"))
    try:
        changes = svc.changes()
        data = await svc.call_add_task_tool({"title": "买牛奶"})
        change = changes.get_nowait()
        assert change is not None and change.as_action() == {"operation": "added", "task": data}
    finally:
        await svc.stop()
