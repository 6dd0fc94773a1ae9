"""DialogService: the gRPC face of the dialog core."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from peromesh.server.aio import cancel_and_wait
from peromesh.server.dialog.deps import DialogDeps
from peromesh.server.dialog.session import ConverseSession
from peromesh.server.dialog.turn_counter import TurnCounter


class DialogServicer(pb_grpc.DialogServiceServicer):
    def __init__(self, deps: DialogDeps) -> None:
        self.deps = deps
        self.counter = TurnCounter(deps.history)
        self.open_sessions = 0  # visible to tests: cancelled calls must release their session

    async def Converse(
        self, request_iterator: AsyncIterator[pb.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConverseResponse]:
        session = ConverseSession(self.deps, self.counter)
        reader = asyncio.create_task(session.read(request_iterator), name="converse:reader")
        self.open_sessions += 1
        try:
            async for event in session.gate.events():
                yield event
        finally:
            self.open_sessions -= 1
            await session.close()
            await cancel_and_wait(reader)
