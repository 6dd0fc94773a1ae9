"""How a bridge connection reaches the hub: one attachment per WebSocket node.

Two ports with one contract, both ending in the same `Hub` methods (join,
route, leave), so authentication, liveness and routing are identical:

- `GrpcHubPort`: a HubService.Attach stream per node — a bridge in its own
  process, or several bridges sharing one core.
- `LocalHubPort`: the hub object itself, when the bridge runs in the core's
  process (the embedded default), typed against the public port
  `server.wire.attach.EmbeddedHub` rather than the hub domain. It skips a gRPC
  message per envelope per node, which is what a broadcast to a thousand
  nodes would otherwise pay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from server.rpc.errors import StatusError
from server.wire import envelopes as env
from server.wire.attach import PEER_KEY, TRANSPORT_KEY, Closing, EmbeddedHub, LinkT


class HubClosed(StatusError):
    """The hub ended (or refused) the node: the status, its reason, and for a refused hello the error envelope."""

    def __init__(self, code: grpc.StatusCode, reason: str, answer: gw.Envelope | None = None) -> None:
        super().__init__(code, reason)
        self.answer = answer  # the hub's error envelope for a refused hello

    @property
    def reason(self) -> str:
        return self.message


Deliver = Callable[[hpb.AttachResponse], None]


class HubPort(Protocol):
    async def open(self, hello: gw.Envelope, peer: str) -> gw.Welcome:
        """Attach with the client's hello; the welcome, or HubClosed with the hub's error envelope."""

    async def send(self, envelope: gw.Envelope) -> None:
        """Route one envelope from the node (several tasks may send; writes are serialized)."""

    async def pump(self, deliver: Deliver) -> None:
        """Hand every envelope for the node to `deliver` (shared objects: do not modify) until the
        hub ends the node (HubClosed) or `deliver` raises (re-raised here)."""

    def close(self) -> None:
        """Detach (idempotent, never blocks)."""


class GrpcHubPort:
    def __init__(self, stub: hpb_grpc.HubServiceStub, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata
        self._call: grpc.aio.StreamStreamCall | None = None
        self._writing = asyncio.Lock()  # gRPC allows one write in flight; the reader and the bridge's acks both send

    async def open(self, hello: gw.Envelope, peer: str) -> gw.Welcome:
        self._call = self._stub.Attach(metadata=(*self._metadata, (TRANSPORT_KEY, "websocket"), (PEER_KEY, peer)))
        try:
            await self._call.write(hpb.AttachRequest(envelope=hello))
        except grpc.aio.AioRpcError as exc:
            raise HubClosed(exc.code(), exc.details() or "the hub is unreachable") from exc
        answer = await self.receive()
        if not answer.envelope.HasField("welcome"):
            raise HubClosed(await self._call.code(), answer.envelope.response.error_msg, answer.envelope)
        return answer.envelope.welcome

    async def send(self, envelope: gw.Envelope) -> None:
        assert self._call is not None
        async with self._writing:
            await self._call.write(hpb.AttachRequest(envelope=envelope))

    async def pump(self, deliver: Deliver) -> None:
        while True:
            deliver(await self.receive())

    async def receive(self) -> hpb.AttachResponse:
        assert self._call is not None
        try:
            answer = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise HubClosed(exc.code(), exc.details() or exc.code().name) from exc
        if answer is grpc.aio.EOF:
            raise HubClosed(grpc.StatusCode.UNAVAILABLE, "the hub ended the node's stream")
        response: hpb.AttachResponse = answer
        return response

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()


class LocalHubPort(Generic[LinkT]):
    def __init__(self, hub: EmbeddedHub[LinkT]) -> None:
        self._hub = hub
        self._link: LinkT | None = None

    async def open(self, hello: gw.Envelope, peer: str) -> gw.Welcome:
        try:
            self._link = self._hub.join(hello, hpb.TRANSPORT_WEBSOCKET, peer)
        except StatusError as exc:
            answer = env.error(hello.id, hello.source_id, exc.code.name, str(exc))
            raise HubClosed(exc.code, str(exc), answer) from exc
        first = self._link.outbox.get_nowait()  # join queues the welcome first
        assert not isinstance(first, Closing)
        return first.envelope.welcome

    async def send(self, envelope: gw.Envelope) -> None:
        assert self._link is not None
        self._hub.route(self._link, envelope)

    async def pump(self, deliver: Deliver) -> None:
        """Deliveries arrive synchronously from the hub (no task switch per envelope)."""
        assert self._link is not None
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def sink(item: hpb.AttachResponse | Closing) -> None:
            if ended.done():
                return
            if isinstance(item, Closing):
                ended.set_exception(HubClosed(item.code, item.reason))
                return
            try:
                deliver(item)
            except Exception as exc:  # e.g. the client is too slow: end the pump with it
                ended.set_exception(exc)

        self._link.attach_sink(sink)
        await ended

    def close(self) -> None:
        if self._link is not None:
            self._hub.leave(self._link, grpc.StatusCode.CANCELLED, "the WebSocket closed")
