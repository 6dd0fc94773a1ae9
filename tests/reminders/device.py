"""Devices that collect `reminder_trigger`s: a native hub node (HubService.Attach), as a phone app
would be, and a WebSocket client of the bridge (`WsDevice`), as a PeroLink v1 app would be.

`acks=True` sets hello.reminder_acks and acknowledges every trigger it keeps;
`acks=False` is a PeroLink v1 client (the mesh counts the written trigger as the ack).
The device keeps what it has shown across connections and drops a cursor it
has already seen, as clients are told to; `raw` counts what came on the wire.
Both send heartbeats at the welcome's interval, as real clients do, so a long
campaign does not lose them to the hub's heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc
from meshkit import TEST_TOKEN

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from server.rpc.channels import open_channel
from tests.bridge.gateway_client import GatewayClient


class Shown:
    """What a device showed, counted the way every client is told to: once per cursor."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.shown: list[dict[str, str]] = []  # one per distinct cursor, in arrival order
        self.raw: Counter[int] = Counter()  # cursor → times it came on the wire
        self._arrived = asyncio.Event()

    def arrived(self, params: dict[str, str]) -> int:
        """Count one trigger off the wire (shown if its cursor is new); returns its cursor."""
        cursor = int(params["cursor"])
        self.raw[cursor] += 1
        if self.raw[cursor] == 1 and all(int(s["cursor"]) != cursor for s in self.shown):
            self.shown.append(params)
        self._arrived.set()
        return cursor

    async def wait_for(self, count: int, wait_s: float = 20.0) -> list[dict[str, str]]:
        """Until `count` distinct triggers have been shown (TimeoutError after wait_s)."""
        async with asyncio.timeout(wait_s):
            while len(self.shown) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.shown

    def duplicates(self) -> int:
        """Triggers shown more than once (by reminder and due time): must stay 0."""
        keys = Counter((s["id"], s["due_time"]) for s in self.shown)
        return sum(n - 1 for n in keys.values())


class Device(Shown):
    def __init__(self, node_id: str, acks: bool = False) -> None:
        super().__init__(node_id)
        self.acks = acks
        self.acked: set[int] = set()  # cursors whose reminder_ack the mesh has answered (recorded)
        self.withhold_acks = False  # receive but do not acknowledge (a client that dies before acking)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # one gRPC write at a time: the reader's acks and the heartbeats

    async def connect(self, address: str, token: str = TEST_TOKEN) -> gw.Welcome:
        self._channel = open_channel(address, token)
        self._call = hpb_grpc.HubServiceStub(self._channel).Attach()
        hello = gw.Hello(token=token, platform="test", protocol_version=1, reminder_acks=self.acks)
        await self._call.write(hpb.AttachRequest(envelope=gw.Envelope(id="hello", source_id=self.node_id,
                                                                      target_id="master", hello=hello)))
        first = await asyncio.wait_for(self._call.read(), 10)
        assert first is not grpc.aio.EOF and first.envelope.HasField("welcome"), first
        self._reader = asyncio.create_task(self._read())
        self._beat = asyncio.create_task(heartbeats(first.envelope.welcome, self.node_id, self._write))
        welcome: gw.Welcome = first.envelope.welcome
        return welcome

    async def _write(self, envelope: gw.Envelope) -> None:
        assert self._call is not None
        async with self._writing:
            await self._call.write(hpb.AttachRequest(envelope=envelope))

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
                cursor = self.arrived(dict(request.params))
                if self.acks and not self.withhold_acks:
                    await self._write(gw.Envelope(
                        id=f"ack-{cursor}", source_id=self.node_id, target_id="master",
                        request=gw.ActionRequest(action_name="reminder_ack", params={"cursor": str(cursor)})))

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
        for task in (self._beat, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._beat = None
        if self._channel is not None:
            await self._channel.close()
        self._call = self._reader = self._channel = None


class WsDevice(Shown):
    """A PeroLink v1 app on the bridge's WebSocket (`url` ws://HOST:PORT/ws): it never acks, so
    the bridge acknowledges each trigger it wrote to it."""

    def __init__(self, node_id: str, protocol_version: int = 0) -> None:
        super().__init__(node_id)
        self.protocol_version = protocol_version
        self._client: GatewayClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None

    async def connect(self, url: str, token: str = TEST_TOKEN) -> None:
        client = await GatewayClient.open(url, self.node_id, token, protocol_version=self.protocol_version)
        assert client.welcome is not None
        self._client = client
        self._reader = asyncio.create_task(self._read(client))
        self._beat = asyncio.create_task(heartbeats(client.welcome, self.node_id, client.send))

    async def _read(self, client: GatewayClient) -> None:
        with contextlib.suppress(Exception):  # the socket closed (the core died): the next life reconnects
            while True:
                envelope = await client.recv(wait_s=3600)
                if envelope.request.action_name == "reminder_trigger":
                    self.arrived(dict(envelope.request.params))

    async def disconnect(self) -> None:
        for task in (self._beat, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        self._client = self._reader = self._beat = None


async def heartbeats(welcome: gw.Welcome, node_id: str, send: Callable[[gw.Envelope], Awaitable[None]]) -> None:
    """A heartbeat every `heartbeat_interval_ms` until cancelled or the connection is gone."""
    interval_s = (welcome.heartbeat_interval_ms or 10_000) / 1000
    seq = 0
    with contextlib.suppress(Exception):  # the connection ended: the device's disconnect cancels us
        while True:
            await asyncio.sleep(interval_s)
            seq += 1
            await send(gw.Envelope(source_id=node_id, target_id="master", heartbeat=gw.Heartbeat(seq=seq)))
