"""Tools of the grid: deterministic commands, tool calls, and the tool list of a turn.

The dialog reaches it through `DialogToolPort` (dialog_port.py). The turn asks
`intent()` first: an explicit command (a reminder phrase, "add task …", a
"/tool NAME {json}" call) runs here and its confirmation becomes the reply,
reported as tool_call + tool_result. `call()` runs any tool by name — a
built-in (add_reminder, add_task, recall_memory) or a node capability routed
through the grid, the requesting device first — and is also what NIT
scripts call (see nit_step.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from server.dialog.tool_port import IntentReply, ToolCallRecord, TurnRequest
from server.hub.capabilities import CapabilityGrid
from server.memory.rerank import PROMPT_MIN_SEMANTIC
from server.reminders.service import ReminderService
from server.reminders.timeparse import TimeParseError
from server.rpc.errors import StatusError
from server.tasks.service import TaskService
from server.tools import intents, replies
from server.tools.catalog import ToolCatalog, ToolSpec, builtin_specs
from server.tools.intents import Intent

log = logging.getLogger(__name__)
TOOL_TIMEOUT_S = 10.0


class ToolError(Exception):
    """A tool call that failed or was refused; the message is for the user and the model."""


class Recaller(Protocol):
    async def recall_context(self, session_id: str, query: str, top_k: int = 5, min_score: float = 0.05,
                             min_semantic: float = PROMPT_MIN_SEMANTIC) -> list[str]: ...


class GridToolPort:
    def __init__(self, *, reminders: ReminderService | None = None, tasks: TaskService | None = None,
                 grid: CapabilityGrid | None = None, memory: Recaller | None = None,
                 timeout_s: float = TOOL_TIMEOUT_S) -> None:
        self.reminders = reminders
        self.tasks = tasks
        self.grid = grid
        self.memory = memory
        self.timeout_s = timeout_s
        self.catalog = ToolCatalog(builtin_specs(reminders is not None, tasks is not None, memory is not None), grid)

    # -- the tool list -----------------------------------------------------
    def tools(self) -> list[ToolSpec]:
        """The LLM's tool list for this turn: built-ins and the capabilities online now."""
        return self.catalog.tools()

    # -- explicit commands (the dialog port's intent, dialog_port.py) --------
    async def intent(self, request: TurnRequest) -> IntentReply | None:
        found = intents.match(request.text, lambda name: self.catalog.find(name) is not None)
        if found is None:
            return None
        if found.kind == "reminder":
            return await self._remind(request, found)
        if found.kind == "task":
            return await self._add_task(found)
        return await self._run_tool(request, found)

    # -- calling tools -----------------------------------------------------
    async def call(self, name: str, arguments: dict[str, Any], device_id: str = "") -> Any:
        """Run tool `name` (a built-in or a node capability); ToolError with the reason on failure."""
        try:
            if name == "add_reminder" and self.reminders is not None:
                return await self.reminders.call_add_reminder_tool(_required(arguments, "time", "content"))
            if name == "add_task" and self.tasks is not None:
                return await self.tasks.call_add_task_tool(_required(arguments, "title"))
            if name == "recall_memory" and self.memory is not None:
                query = str(_required(arguments, "query")["query"])
                return await self.memory.recall_context("", query, int(arguments.get("top_k", 5)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(str(exc).strip("'\"") or type(exc).__name__) from exc
        spec = self.catalog.find(name)
        if self.grid is None or (spec is None and not self.grid.owners(name)) or (spec and spec.source != "node"):
            known = ", ".join(t.name for t in self.tools()) or "none"
            raise ToolError(f"no tool named {name!r} is available now (tools: {known})")
        try:  # (an offer left out of the list — dangerous, not allowed — is refused by the grid with the reason)
            done = await self.grid.invoke(spec.name if spec else name, arguments, device_id, self.timeout_s)
        except StatusError as exc:
            raise ToolError(f"{exc.code.name}: {exc.message}") from exc
        return _decoded(done.result)

    async def record(self, name: str, arguments: dict[str, Any], device_id: str) -> tuple[ToolCallRecord, Any]:
        """Call a tool and describe the call for the client (error recorded, not raised)."""
        call_id = uuid.uuid4().hex[:16]
        args_json = json.dumps(arguments, ensure_ascii=False)
        try:
            result = await self.call(name, arguments, device_id)
        except ToolError as exc:
            return ToolCallRecord(call_id, name, args_json, error=str(exc)), exc
        return ToolCallRecord(call_id, name, args_json, json.dumps(result, ensure_ascii=False, default=str)), result

    # -- the commands ------------------------------------------------------
    async def _remind(self, request: TurnRequest, found: Intent) -> IntentReply | None:
        if self.reminders is None:
            return None
        try:
            reminder, parsed = await self.reminders.create_from_text(request.text)
        except TimeParseError as exc:
            if str(exc).startswith(intents.NO_TIME):
                return None  # no time in it after all: chat for the model
            return IntentReply(replies.failed("设置提醒" if found.language == "zh" else "set the reminder",
                                              str(exc), found.language))
        except ValueError as exc:  # e.g. the time has passed
            return IntentReply(replies.failed("设置提醒" if found.language == "zh" else "set the reminder",
                                              str(exc), found.language))
        args = {"time": parsed.time_phrase, "content": parsed.content}
        record = ToolCallRecord(uuid.uuid4().hex[:16], "add_reminder", json.dumps(args, ensure_ascii=False),
                                json.dumps(reminder.as_data(), ensure_ascii=False))
        return IntentReply(replies.reminder_confirmation(parsed, datetime.now(UTC)), [record])

    async def _add_task(self, found: Intent) -> IntentReply | None:
        if self.tasks is None:
            return None
        record, result = await self.record("add_task", {"title": found.text}, "")
        if isinstance(result, ToolError):
            return IntentReply(replies.failed("添加任务" if found.language == "zh" else "add the task",
                                              str(result), found.language), [record])
        return IntentReply(replies.task_confirmation(found.text, found.language), [record])

    async def _run_tool(self, request: TurnRequest, found: Intent) -> IntentReply:
        spec = self.catalog.find(found.tool)
        name = spec.name if spec is not None else found.tool
        if found.error:
            return IntentReply(replies.tool_failed(name, found.error, found.language))
        record, result = await self.record(name, found.arguments, request.device_id)
        if isinstance(result, ToolError):
            return IntentReply(replies.tool_failed(name, str(result), found.language), [record])
        return IntentReply(replies.tool_done(name, result, found.language), [record])


def _required(arguments: dict[str, Any], *names: str) -> dict[str, Any]:
    missing = [n for n in names if n not in arguments or arguments[n] in (None, "")]
    if missing:
        raise ValueError(f"missing argument{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    return arguments


def _decoded(data: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, ValueError):
        return data


