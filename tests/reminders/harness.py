"""Real ReminderService servers for tests: in-process, or as a child process to SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from peromesh.reminder.v1 import reminder_service_pb2 as pb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.reminders.service import ReminderService
from server.reminders.servicer import ReminderServicer
from server.rpc.channels import open_channel
from server.rpc.serving import ServiceBinding, start_server
from tests.meshkit import TEST_TOKEN
from tests.served import ChildProcess


@dataclass
class Running:
    service: ReminderService
    stub: pb_grpc.ReminderServiceStub
    address: str


@asynccontextmanager
async def reminder_server(db_url: str, misfire_grace_s: float = 600.0,
                          timezone: str = "Asia/Shanghai") -> AsyncIterator[Running]:
    service = ReminderService()
    await service.open(db_url, timezone=timezone, misfire_grace_s=misfire_grace_s)
    binding = ServiceBinding("peromesh.reminder.v1.ReminderService",
                             pb_grpc.add_ReminderServiceServicer_to_server, ReminderServicer(service))
    server = await start_server("reminders-test", [binding], "127.0.0.1", 0, TEST_TOKEN)
    channel = open_channel(server.address, TEST_TOKEN)
    try:
        yield Running(service, pb_grpc.ReminderServiceStub(channel), server.address)
    finally:
        await channel.close()
        await server.stop(0.5)
        await service.stop()


class Relay:
    """A push relay: keeps WatchReminders open, remembers its last cursor, reconnects with it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.cursor: int | None = None
        self.received: list[pb.ReminderTrigger] = []

    async def session(self, until_caught_up_and: float = 0.0) -> list[pb.ReminderTrigger]:
        """Connect (resuming from the cursor), read the backlog, then live events for a while."""
        got: list[pb.ReminderTrigger] = []
        async with open_channel(self.address, TEST_TOKEN) as channel:
            stub = pb_grpc.ReminderServiceStub(channel)
            request = pb.WatchRemindersRequest()
            if self.cursor is not None:
                request.after_cursor = self.cursor
            call = stub.WatchReminders(request)
            try:
                async with asyncio.timeout(until_caught_up_and + 10):
                    async for event in call:
                        if event.HasField("caught_up"):
                            self.cursor = event.caught_up.cursor
                            break
                        got.append(event.trigger)
                        self.cursor = event.trigger.cursor
                loop = asyncio.get_running_loop()
                deadline = loop.time() + until_caught_up_and
                while (left := deadline - loop.time()) > 0:
                    try:
                        event = await asyncio.wait_for(anext(call.__aiter__()), left)
                    except TimeoutError:
                        break
                    got.append(event.trigger)
                    self.cursor = event.trigger.cursor
            finally:
                call.cancel()
        self.received.extend(got)
        return got


class ChildServer(ChildProcess):
    """`python -m server.app.reminder_server` as a real process."""

    def __init__(self, db_url: str, *extra: str) -> None:
        self.db_url = db_url
        self.extra = extra
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.app.reminder_server", "--db-url", self.db_url,
            "--reminder-timezone", "Asia/Shanghai", "--log-level", "WARNING", "--token", TEST_TOKEN, *self.extra,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()
        assert line.startswith("listening on "), line
        self.address = line.split()[-1]
        async with open_channel(self.address, TEST_TOKEN) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
        return self.address

    async def terminate(self) -> None:
        await self.stop()


async def wait_status(call_result: grpc.aio.UnaryUnaryCall) -> grpc.StatusCode:  # type: ignore[type-arg]
    try:
        await call_result
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
