"""DialogService: the gRPC face of the dialog core."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.aio import cancel_and_wait
from server.dialog.deps import DialogDeps
from server.dialog.list_turns import list_turns
from server.dialog.live_sessions import LiveSessions
from server.dialog.session import ConverseSession
from server.dialog.turn_counter import TurnCounter
from server.rpc.errors import status_errors


class DialogServicer(pb_grpc.DialogServiceServicer):
    def __init__(self, deps: DialogDeps, sessions: LiveSessions | None = None) -> None:
        self.deps = deps
        self.counter = TurnCounter(deps.history)
        self.open_sessions = 0  # visible to tests: cancelled calls must release their session
        self.sessions = sessions if sessions is not None else LiveSessions()  # live streams, for announcements
        self._teardowns: set[asyncio.Task[None]] = set()

    @status_errors()
    async def Converse(
        self, request_iterator: AsyncIterator[pb.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConverseResponse]:
        session = ConverseSession(self.deps, self.counter)
        reader = asyncio.create_task(session.read(request_iterator), name="converse:reader")
        self.open_sessions += 1
        self.sessions.add(session)
        try:
            async for event in session.gate.events():
                yield event
        finally:
            # Shielded: gRPC may cancel this coroutine again while it cleans up, and the
            # interrupted turn must still be persisted and every task released.
            teardown = asyncio.create_task(self._teardown(session, reader), name="converse:teardown")
            self._teardowns.add(teardown)
            teardown.add_done_callback(self._teardowns.discard)
            await asyncio.shield(teardown)

    @status_errors()
    async def ListTurns(self, request: pb.ListTurnsRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListTurnsResponse:
        """One page of a session's stored turns, read from the database (never the context cache,
        which holds only what the model sees)."""
        return await list_turns(self.deps.history.db, request)

    async def _teardown(self, session: ConverseSession, reader: asyncio.Task[None]) -> None:
        try:
            self.sessions.discard(session)
            await session.close()
            await cancel_and_wait(reader)
        finally:
            self.open_sessions -= 1

    async def announce(self, text: str, device_ids: Sequence[str] = (), exclude: Collection[str] = ()) -> int:
        """See `LiveSessions.announce`."""
        return await self.sessions.announce(text, device_ids, exclude)

    async def drain(self) -> None:
        """Wait for stream teardowns still running (at server stop)."""
        await asyncio.gather(*self._teardowns, return_exceptions=True)
