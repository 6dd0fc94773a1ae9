"""A native hub node that collects `reminder_trigger`s, as a phone app would (HubService.Attach).

`acks=True` sets hello.reminder_acks and acknowledges every trigger it keeps;
`acks=False` is a PeroLink v1 client (the mesh counts delivery as the ack).
The device keeps what it has shown across connections and drops a cursor it
has already seen, as clients are told to; `raw` counts what came on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import grpc
from meshkit import TEST_TOKEN

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from server.rpc.channels import open_channel


class Device:
    def __init__(self, node_id: str, acks: bool = False) -> None:
        self.node_id = node_id
        self.acks = acks
        self.shown: list[dict[str, str]] = []  # one per distinct cursor, in arrival order
        self.raw: Counter[int] = Counter()  # cursor → times it came on the wire
        self.acked: set[int] = set()  # cursors whose reminder_ack the mesh has answered (recorded)
        self.withhold_acks = False  # receive but do not acknowledge (a client that dies before acking)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def connect(self, address: str, token: str = TEST_TOKEN) -> gw.Welcome:
        self._channel = open_channel(address, token)
        self._call = hpb_grpc.HubServiceStub(self._channel).Attach()
        hello = gw.Hello(token=token, platform="test", protocol_version=1, reminder_acks=self.acks)
        await self._call.write(hpb.AttachRequest(envelope=gw.Envelope(id="hello", source_id=self.node_id,
                                                                      target_id="master", hello=hello)))
        first = await asyncio.wait_for(self._call.read(), 10)
        assert first is not grpc.aio.EOF and first.envelope.HasField("welcome"), first
        self._reader = asyncio.create_task(self._read())
        return first.envelope.welcome

    async def _read(self) -> None:
        assert self._call is not None
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            while (answer := await self._call.read()) is not grpc.aio.EOF:
                if answer.envelope.response.request_id.startswith("ack-"):
                    self.acked.add(int(answer.envelope.response.request_id[4:]))
                    self._arrived.set()
                    continue
                request = answer.envelope.request
                if request.action_name != "reminder_trigger":
                    continue
                cursor = int(request.params["cursor"])
                self.raw[cursor] += 1
                if self.raw[cursor] == 1 and all(int(s["cursor"]) != cursor for s in self.shown):
                    self.shown.append(dict(request.params))
                if self.acks and not self.withhold_acks:
                    await self._call.write(hpb.AttachRequest(envelope=gw.Envelope(
                        id=f"ack-{cursor}", source_id=self.node_id, target_id="master",
                        request=gw.ActionRequest(action_name="reminder_ack", params={"cursor": str(cursor)}))))
                self._arrived.set()

    async def wait_for(self, count: int, wait_s: float = 20.0) -> list[dict[str, str]]:
        """Until `count` distinct triggers have been shown (AssertionError after wait_s)."""
        async with asyncio.timeout(wait_s):
            while len(self.shown) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.shown

    async def wait_acked(self, cursor: int, wait_s: float = 10.0) -> None:
        """Until the mesh has answered (so recorded) the device's ack of `cursor`."""
        async with asyncio.timeout(wait_s):
            while cursor not in self.acked:
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_raw(self, cursor: int, times: int, wait_s: float = 10.0) -> None:
        """Until `cursor` has come on the wire `times` times."""
        async with asyncio.timeout(wait_s):
            while self.raw[cursor] < times:
                self._arrived.clear()
                await self._arrived.wait()

    async def disconnect(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._channel is not None:
            await self._channel.close()
        self._call = self._reader = self._channel = None

    def duplicates(self) -> int:
        """Triggers shown more than once (by reminder and due time): must stay 0."""
        keys = Counter((s["id"], s["due_time"]) for s in self.shown)
        return sum(n - 1 for n in keys.values())
