"""Gateway actions to "master" for tasks and reminders, answered with an ActionResponse.

Any client (a browser through the bridge, a native node) can send
`task:add` {title, notes?}, `task:complete` / `task:reopen` / `task:delete`
{id}, `task:list` {include_completed?}, `reminder:add` {text} or {time,
content}, `reminder:list` {include_inactive?}, `reminder:cancel` {id}, `node:list` {}
(the attached devices and their capabilities, for a console's device view). The
response data is JSON (the task, reminder or node, or a list of them); refusals
carry a gRPC code name (INVALID_ARGUMENT, NOT_FOUND). The resulting change
reaches every client as `task:update` / `schedule_update` (broadcasts.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.hub import Hub
from server.hub.nodes import NodeInfo
from server.reminders.service import ReminderNotFound, ReminderService
from server.reminders.timeparse import TimeParseError
from server.rpc.errors import StatusError
from server.tasks.service import TaskNotFound, TaskService

Handler = Callable[[NodeInfo, gw.Envelope], Awaitable[str | None]]
TASK_ACTIONS = ("task:add", "task:complete", "task:reopen", "task:delete", "task:list")
REMINDER_ACTIONS = ("reminder:add", "reminder:list", "reminder:cancel")
NODE_ACTIONS = ("node:list",)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _param(envelope: gw.Envelope, name: str) -> str:
    value = envelope.request.params.get(name, "").strip()
    if not value:
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"{envelope.request.action_name} needs the param {name!r}")
    return value


def _flag(envelope: gw.Envelope, name: str) -> bool:
    return envelope.request.params.get(name, "").strip().lower() in ("1", "true", "yes")


def _invalid(exc: Exception) -> StatusError:
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(exc).strip("'\""))


def task_handlers(tasks: TaskService) -> dict[str, Handler]:
    async def add(node: NodeInfo, envelope: gw.Envelope) -> str:
        try:
            task = await tasks.add(_param(envelope, "title"), envelope.request.params.get("notes", ""))
        except ValueError as exc:
            raise _invalid(exc) from exc
        return _dump(task.as_data())

    def by_id(op: Callable[[str], Awaitable[Any]]) -> Handler:
        async def handle(node: NodeInfo, envelope: gw.Envelope) -> str:
            task_id = _param(envelope, "id")
            try:
                task = await op(task_id)
            except TaskNotFound:
                raise StatusError(grpc.StatusCode.NOT_FOUND, f"no task has id {task_id!r}") from None
            return _dump(task.as_data())
        return handle

    async def list_(node: NodeInfo, envelope: gw.Envelope) -> str:
        found = await tasks.list_tasks(include_completed=_flag(envelope, "include_completed"))
        return _dump([t.as_data() for t in found])

    return {"task:add": add, "task:complete": by_id(tasks.complete), "task:reopen": by_id(tasks.reopen),
            "task:delete": by_id(tasks.delete), "task:list": list_}


def reminder_handlers(reminders: ReminderService) -> dict[str, Handler]:
    async def add(node: NodeInfo, envelope: gw.Envelope) -> str:
        params = envelope.request.params
        try:
            if params.get("text", "").strip():
                reminder, _ = await reminders.create_from_text(params["text"])
            else:
                reminder = await reminders.add_reminder(_param(envelope, "time"), _param(envelope, "content"))
        except (TimeParseError, ValueError) as exc:
            raise _invalid(exc) from exc
        return _dump(reminder.as_data())

    async def list_(node: NodeInfo, envelope: gw.Envelope) -> str:
        found = await reminders.list_reminders(include_inactive=_flag(envelope, "include_inactive"))
        return _dump([r.as_data() for r in found])

    async def cancel(node: NodeInfo, envelope: gw.Envelope) -> str:
        reminder_id = _param(envelope, "id")
        try:
            return _dump((await reminders.cancel(reminder_id)).as_data())
        except ReminderNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, f"no reminder has id {reminder_id!r}") from None
        except ValueError as exc:
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc

    return {"reminder:add": add, "reminder:list": list_, "reminder:cancel": cancel}


def node_data(node: NodeInfo) -> dict[str, Any]:
    """What a device view shows of an attached node (no peer address: that stays with the operator)."""
    return {"node_id": node.node_id, "device_name": node.device_name, "platform": node.platform,
            "client_version": node.client_version, "connected_at_ms": node.connected_at_ms,
            "last_seen_at_ms": node.last_seen_at_ms,
            "capabilities": [{"name": c.name, "description": c.description, "dangerous": c.dangerous}
                             for c in sorted(node.capabilities.values(), key=lambda c: c.name)]}


def node_handlers(hub: Hub) -> dict[str, Handler]:
    async def list_(node: NodeInfo, envelope: gw.Envelope) -> str:
        return _dump([node_data(n) for n in hub.nodes()])

    return {"node:list": list_}


def register(hub: Hub, tasks: TaskService | None, reminders: ReminderService | None) -> list[str]:
    """Install the handlers the running services support; returns the action names."""
    handlers: dict[str, Handler] = node_handlers(hub)
    if tasks is not None:
        handlers |= task_handlers(tasks)
    if reminders is not None:
        handlers |= reminder_handlers(reminders)
    for name, handler in handlers.items():
        hub.on_action(name, handler)
    return sorted(handlers)
