"""TaskService over real gRPC: add/complete/reopen/delete/list, WatchTasks, persistence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from peromesh.task.v1 import task_service_pb2 as pb
from peromesh.task.v1 import task_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from server.rpc.serving import ServiceBinding, start_server
from server.storage.db import sqlite_url
from server.tasks.service import TaskService
from server.tasks.servicer import TaskServicer
from tests.meshkit import TEST_TOKEN


@asynccontextmanager
async def task_server(db_url: str) -> AsyncIterator[tuple[TaskService, pb_grpc.TaskServiceStub]]:
    service = TaskService()
    await service.open(db_url)
    binding = ServiceBinding("peromesh.task.v1.TaskService", pb_grpc.add_TaskServiceServicer_to_server,
                             TaskServicer(service))
    server = await start_server("tasks-test", [binding], "127.0.0.1", 0, TEST_TOKEN)
    channel = open_channel(server.address, TEST_TOKEN)
    try:
        yield service, pb_grpc.TaskServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0.5)
        await service.stop()


async def _next(call: grpc.aio.UnaryStreamCall) -> pb.WatchTasksResponse:  # type: ignore[type-arg]
    return await asyncio.wait_for(call.read(), 5)  # type: ignore[no-any-return]


async def test_lifecycle_is_streamed_to_watchers_and_persisted(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "tasks")
    async with task_server(url) as (service, stub):
        early = (await stub.AddTask(pb.AddTaskRequest(title="  buy milk "))).task
        watch = stub.WatchTasks(pb.WatchTasksRequest(send_snapshot=True))
        first = await _next(watch)
        assert (first.operation, first.task.id, first.task.title) == (pb.TASK_OPERATION_SNAPSHOT, early.id, "buy milk")
        in_process = service.changes()
        added = (await stub.AddTask(pb.AddTaskRequest(title="call mom", notes="about sunday"))).task
        done = (await stub.CompleteTask(pb.CompleteTaskRequest(id=added.id))).task
        assert done.completed and done.HasField("complete_time")
        again = (await stub.CompleteTask(pb.CompleteTaskRequest(id=added.id))).task  # no-op, no event
        assert again.complete_time == done.complete_time
        reopened = (await stub.ReopenTask(pb.ReopenTaskRequest(id=added.id))).task
        assert not reopened.completed and not reopened.HasField("complete_time")
        await stub.CompleteTask(pb.CompleteTaskRequest(id=added.id))
        deleted = (await stub.DeleteTask(pb.DeleteTaskRequest(id=early.id))).task
        assert deleted.title == "buy milk"
        expected = [(pb.TASK_OPERATION_ADDED, added.id), (pb.TASK_OPERATION_COMPLETED, added.id),
                    (pb.TASK_OPERATION_REOPENED, added.id), (pb.TASK_OPERATION_COMPLETED, added.id),
                    (pb.TASK_OPERATION_DELETED, early.id)]
        assert [(e.operation, e.task.id) for e in [await _next(watch) for _ in expected]] == expected
        actions = [in_process.get_nowait() for _ in expected]
        assert [a.as_action()["operation"] for a in actions if a] == \
            ["added", "completed", "reopened", "completed", "deleted"]
        assert in_process.get_nowait() is None
        watch.cancel()
        assert (await stub.ListTasks(pb.ListTasksRequest())).tasks == []
    async with task_server(url) as (_, stub):
        tasks = (await stub.ListTasks(pb.ListTasksRequest(include_completed=True))).tasks
        assert [(t.title, t.notes, t.completed) for t in tasks] == [("call mom", "about sunday", True)]


@pytest.mark.parametrize("rpc", ["CompleteTask", "ReopenTask", "DeleteTask"])
async def test_unknown_ids_are_not_found(tmp_path: Path, rpc: str) -> None:
    async with task_server(sqlite_url(tmp_path, "tasks")) as (_, stub):
        request = getattr(pb, f"{rpc}Request")(id="missing")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await getattr(stub, rpc)(request)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("title", ["", "   ", "x" * 501])
async def test_bad_titles_are_rejected(tmp_path: Path, title: str) -> None:
    async with task_server(sqlite_url(tmp_path, "tasks")) as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.AddTask(pb.AddTaskRequest(title=title))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_open_and_completed_lists(tmp_path: Path) -> None:
    async with task_server(sqlite_url(tmp_path, "tasks")) as (service, stub):
        a = await service.add_task("a")
        b = await service.add_task("b")
        await service.complete(a.id)
        assert [t.id for t in await service.list_tasks()] == [b.id]
        assert [t.id for t in (await stub.ListTasks(pb.ListTasksRequest(include_completed=True))).tasks] == \
            [a.id, b.id]
