"""TaskService over gRPC: a thin mapping onto the in-process `TaskService`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from peromesh.task.v1 import task_service_pb2 as pb
from peromesh.task.v1 import task_service_pb2_grpc as pb_grpc
from server.rpc.errors import StatusError, status_errors
from server.tasks.service import Task, TaskNotFound, TaskService

_OPS = {"snapshot": pb.TASK_OPERATION_SNAPSHOT, "added": pb.TASK_OPERATION_ADDED,
        "completed": pb.TASK_OPERATION_COMPLETED, "reopened": pb.TASK_OPERATION_REOPENED,
        "deleted": pb.TASK_OPERATION_DELETED}


def _ts(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t.astimezone(UTC))
    return ts


def task_pb(t: Task) -> pb.Task:
    out = pb.Task(id=t.id, title=t.title, notes=t.notes, completed=t.completed, create_time=_ts(t.created_at),
                  update_time=_ts(t.updated_at))
    if t.completed_at is not None:
        out.complete_time.CopyFrom(_ts(t.completed_at))
    if t.due_time is not None:
        out.due_time.CopyFrom(_ts(t.due_time))
    return out


class TaskServicer(pb_grpc.TaskServiceServicer):
    def __init__(self, service: TaskService) -> None:
        self.service = service

    async def _by_id(self, fn: Callable[[str], Awaitable[Task]], task_id: str,
                     context: grpc.aio.ServicerContext) -> pb.Task:
        try:
            return task_pb(await fn(task_id))
        except TaskNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, f"no task {task_id!r}") from None

    @status_errors()
    async def AddTask(self, request: pb.AddTaskRequest, context: grpc.aio.ServicerContext) -> pb.AddTaskResponse:
        due = request.due_time.ToDatetime(tzinfo=UTC) if request.HasField("due_time") else None
        try:
            task = await self.service.add(request.title, request.notes, due)
        except ValueError as exc:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return pb.AddTaskResponse(task=task_pb(task))

    @status_errors()
    async def CompleteTask(self, request: pb.CompleteTaskRequest,
                           context: grpc.aio.ServicerContext) -> pb.CompleteTaskResponse:
        return pb.CompleteTaskResponse(task=await self._by_id(self.service.complete, request.id, context))

    @status_errors()
    async def ReopenTask(self, request: pb.ReopenTaskRequest,
                         context: grpc.aio.ServicerContext) -> pb.ReopenTaskResponse:
        return pb.ReopenTaskResponse(task=await self._by_id(self.service.reopen, request.id, context))

    @status_errors()
    async def DeleteTask(self, request: pb.DeleteTaskRequest,
                         context: grpc.aio.ServicerContext) -> pb.DeleteTaskResponse:
        return pb.DeleteTaskResponse(task=await self._by_id(self.service.delete, request.id, context))

    @status_errors()
    async def ListTasks(self, request: pb.ListTasksRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListTasksResponse:
        tasks = await self.service.list_tasks(include_completed=request.include_completed)
        return pb.ListTasksResponse(tasks=[task_pb(t) for t in tasks])

    @status_errors()
    async def WatchTasks(self, request: pb.WatchTasksRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchTasksResponse]:
        with self.service.changes() as changes:  # subscribed before the snapshot: nothing falls between
            if request.send_snapshot:
                for task in await self.service.list_tasks(include_completed=True):
                    yield pb.WatchTasksResponse(operation=pb.TASK_OPERATION_SNAPSHOT, task=task_pb(task))
            async for change in changes:
                yield pb.WatchTasksResponse(operation=_OPS[change.operation], task=task_pb(change.task))
