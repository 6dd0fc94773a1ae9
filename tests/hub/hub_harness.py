"""Native Attach clients for hub tests (imported by conftest and the tests)."""

from __future__ import annotations

import asyncio

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.hub import Hub
from server.rpc.channels import open_channel
from server.rpc.serving import GrpcServer

TOKEN = "test-token"


class NativeNode:
    """A gRPC node attached to the hub: write envelopes, read envelopes with a timeout."""

    def __init__(self, stub: pb_grpc.HubServiceStub, node_id: str) -> None:
        self.node_id = node_id
        self.call = stub.Attach()

    async def send(self, envelope: gw.Envelope) -> None:
        await self.call.write(pb.AttachRequest(envelope=envelope))

    async def hello(self, token: str = TOKEN, **fields: object) -> gw.Envelope:
        await self.send(gw.Envelope(id="h1", source_id=self.node_id, target_id="master",
                                    hello=gw.Hello(token=token, platform="test", **fields)))  # type: ignore[arg-type]
        return await self.recv()

    async def recv(self, wait_s: float = 5.0) -> gw.Envelope:
        response = await asyncio.wait_for(self.call.read(), wait_s)
        assert response is not grpc.aio.EOF, "stream ended"
        return response.envelope

    async def recv_request(self, wait_s: float = 5.0) -> gw.Envelope:
        """The next request envelope (skipping heartbeat echoes)."""
        while True:
            envelope = await self.recv(wait_s)
            if not envelope.HasField("heartbeat"):
                return envelope

    async def status(self) -> grpc.StatusCode:
        """Read to the end of the stream and return its status code."""
        try:
            while await asyncio.wait_for(self.call.read(), 5.0) is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return await self.call.code()


class HubHarness:
    def __init__(self, hub: Hub, server: GrpcServer) -> None:
        self.hub = hub
        self.server = server
        self.channel = open_channel(server.address, TOKEN)
        self.stub = pb_grpc.HubServiceStub(self.channel)
        self.nodes: list[NativeNode] = []

    async def node(self, node_id: str) -> NativeNode:
        node = NativeNode(self.stub, node_id)
        self.nodes.append(node)
        return node

    async def attached(self, node_id: str) -> NativeNode:
        node = await self.node(node_id)
        welcome = await node.hello()
        assert welcome.HasField("welcome"), welcome
        return node


