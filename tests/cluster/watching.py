"""A HubService.WatchNodes stream read into a list by a background task, for assertions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc

from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel

Seen = tuple[int, str, str]  # (change, node id, reason)


class NodeWatcher:
    """Every message of one WatchNodes stream, in order (`changes`), as it arrives."""

    def __init__(self, address: str, token: str) -> None:
        self._channel = open_channel(address, token)
        self._call = pb_grpc.HubServiceStub(self._channel).WatchNodes(pb.WatchNodesRequest())
        self.changes: list[pb.WatchNodesResponse] = []
        self.times: list[float] = []  # when each arrived (the loop's clock)
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for change in self._call:
                self.changes.append(change)
                self.times.append(asyncio.get_running_loop().time())
                self._arrived.set()

    def seen(self, *node_ids: str) -> list[Seen]:
        """What was seen of these nodes (all without arguments), as (change, node id, reason)."""
        return [(c.change, c.node.node_id, c.reason) for c in self.changes
                if not node_ids or c.node.node_id in node_ids]

    async def until(self, check: Callable[[list[pb.WatchNodesResponse]], bool], wait_s: float = 5.0) -> None:
        async with asyncio.timeout(wait_s):
            while not check(self.changes):
                self._arrived.clear()
                await self._arrived.wait()

    async def until_seen(self, change: int, node_id: str, wait_s: float = 5.0) -> pb.WatchNodesResponse:
        """The first message of this change to this node (waiting for it)."""
        return self.changes[await self.index_of(change, node_id, wait_s)]

    async def index_of(self, change: int, node_id: str, wait_s: float = 5.0) -> int:
        """Where the first message of this change to this node is in `changes` (waiting for it)."""
        def has(changes: list[pb.WatchNodesResponse]) -> bool:
            return any(c.change == change and c.node.node_id == node_id for c in changes)
        await self.until(has, wait_s)
        return next(i for i, c in enumerate(self.changes) if c.change == change and c.node.node_id == node_id)

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._channel.close()
