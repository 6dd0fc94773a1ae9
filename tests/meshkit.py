"""Test kit: start real PeroMesh servers in-process on ephemeral loopback ports.

Everything goes through the same settings parser and composition root as
`peromesh serve` (server/app/root.py), so tests exercise the real wiring, not a copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.app.root import Mesh, start_mesh
from server.app.settings import SERVERS
from server.cli import parse_serve

REPO = Path(__file__).resolve().parent.parent
TEST_MODELS = REPO / "build" / "test-data"  # converted test models survive between runs
TEST_TOKEN = "test-token"  # the mesh token of test meshes and harnesses (servers demand it, as in production)


async def start_test_mesh(data_dir: Path, *flags: str, only: Sequence[str] = ()) -> Mesh:
    """Start servers (all, or `only`) through the composition root with every port 0 and the scripted
    LLM unless overridden: the same settings parser and wiring as `peromesh serve`."""
    argv = ["--data-dir", str(data_dir)]
    for name in SERVERS:
        argv += [f"--{name}-port", "0"]
    if "--llm" not in flags:
        argv += ["--llm", "scripted"]
    if only:
        argv += ["--only", ",".join(only)]
    settings = parse_serve([*argv, *flags])
    return await start_mesh(settings, gateway_token=settings.common.token or TEST_TOKEN)


class Conversation:
    """A Converse call with a request queue and an event queue, for assertions."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()
        self.call = pb_grpc.DialogServiceStub(channel).Converse(self._iter(), metadata=tuple(metadata))
        self.events: asyncio.Queue[pb.ConverseResponse | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _iter(self) -> AsyncIterator[pb.ConverseRequest]:
        while (item := await self._requests.get()) is not None:
            yield item

    async def _read(self) -> None:
        try:
            async for event in self.call:
                self.events.put_nowait(event)
        finally:
            self.events.put_nowait(None)

    def send(self, **kind: Any) -> None:
        self._requests.put_nowait(pb.ConverseRequest(**kind))

    def config(self, **fields: Any) -> None:
        self.send(config=pb.SessionConfig(**fields))

    def say(self, text: str) -> None:
        self.send(user_text=pb.UserText(text=text))

    def interrupt(self, turn_id: str = "") -> None:
        self.send(interrupt=pb.Interrupt(turn_id=turn_id))

    def half_close(self) -> None:
        self._requests.put_nowait(None)

    async def next(self, timeout: float = 30.0) -> pb.ConverseResponse:
        event = await asyncio.wait_for(self.events.get(), timeout)
        if event is None:
            raise EOFError("stream ended")
        return event

    async def until(self, kind: str, timeout: float = 60.0, turn_id: str | None = None) -> list[pb.ConverseResponse]:
        """Events up to and including the first `kind` (of `turn_id`, if given)."""
        seen = []
        while True:
            event = await self.next(timeout)
            seen.append(event)
            if event.WhichOneof("event") == kind and (turn_id is None or event.turn_id == turn_id):
                return seen

    async def until_state(self, state: int, timeout: float = 60.0) -> list[pb.ConverseResponse]:
        seen = []
        while True:
            event = await self.next(timeout)
            seen.append(event)
            if event.WhichOneof("event") == "state_update" and event.state_update.state == state:
                return seen

    async def rest(self, timeout: float = 60.0) -> list[pb.ConverseResponse]:
        """Everything until the server ends the stream."""
        out = []
        while (event := await asyncio.wait_for(self.events.get(), timeout)) is not None:
            out.append(event)
        return out

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def kinds(events: Sequence[pb.ConverseResponse]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]
