"""HubService over gRPC: Attach streams, node listing and watching, broadcast."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.aio import TaskOwner
from server.failpoints import failpoint
from server.hub.capabilities import DEFAULT_TIMEOUT_S, CapabilityGrid
from server.hub.hub import Hub
from server.hub.nodes import Closing, NodeLink
from server.hub.watch import WATCH_BACKLOG
from server.rpc.errors import StatusError, status_errors
from server.wire import envelopes as env
from server.wire.attach import PEER_KEY, TRANSPORT_KEY

log = logging.getLogger(__name__)
HELLO_TIMEOUT_S = 10.0


class HubServicer(pb_grpc.HubServiceServicer):
    def __init__(self, hub: Hub, grid: CapabilityGrid | None = None, watch_backlog: int = WATCH_BACKLOG) -> None:
        self.hub = hub
        self.grid = grid or CapabilityGrid(hub)
        self.watch_backlog = watch_backlog

    @status_errors()
    async def Attach(
        self, request_iterator: AsyncIterator[pb.AttachRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AttachResponse]:
        """Hello → welcome (or error and end) → envelopes both ways until either side ends.

        Cancellation: when the client goes away the reader and this generator
        are cancelled by grpc; `finally` detaches the node.
        """
        hello = await _first_envelope(request_iterator, context)
        transport, peer = _transport_and_peer(context)
        try:
            link = self.hub.join(hello.envelope, transport, peer)
        except StatusError as exc:
            yield pb.AttachResponse(envelope=env.error(hello.envelope.id, hello.envelope.source_id,
                                                       exc.code.name, str(exc)))
            await context.abort(exc.code, str(exc))
            return
        tasks = TaskOwner(f"attach:{link.node_id}")
        tasks.spawn(self._read(link, request_iterator), "reader")
        try:
            while not isinstance(item := await link.outbox.get(), Closing):
                if link.awaits_receipt(item):  # its sender moves on only once it was written
                    failpoint("attach.before_receipted_write")
                    yield item  # grpc resumes this generator once the message is written to the stream
                    link.written(item)
                else:
                    yield item
            if item.code != grpc.StatusCode.OK:
                await context.abort(item.code, item.reason)
        finally:
            self.hub.leave(link, grpc.StatusCode.CANCELLED, "the stream ended")
            await tasks.close()

    async def _read(self, link: NodeLink, requests: AsyncIterator[pb.AttachRequest]) -> None:
        try:
            async for request in requests:
                self.hub.route(link, request.envelope)
        except StatusError as exc:  # e.g. an undecodable message: the stream ends with its status
            self.hub.leave(link, exc.code, exc.message)
            return
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.debug("attach reader of %s ended: %r", link.node_id, exc)
        self.hub.leave(link, grpc.StatusCode.OK, "the node closed its stream")

    @status_errors()
    async def ListNodes(
        self, request: pb.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNodesResponse:
        nodes = self.hub.nodes() + self.hub.remote_nodes()  # in a cluster: every core's
        return pb.ListNodesResponse(nodes=[n.to_proto() for n in nodes])

    @status_errors()
    async def WatchNodes(
        self, request: pb.WatchNodesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchNodesResponse]:
        """Every node online (PRESENT; in a cluster, every core's), then each change once.

        A watcher that falls `watch_backlog` changes behind ends with RESOURCE_EXHAUSTED rather
        than growing memory or silently missing a change; it watches again for a fresh snapshot.
        Cancellation: the subscription is closed in `finally` (the context manager).
        """
        snapshot, changes = self.hub.watch.watch(self.watch_backlog)
        with changes:
            for node in snapshot:
                yield pb.WatchNodesResponse(change=pb.NODE_CHANGE_PRESENT, node=node)
            while True:
                change = await changes.get()
                if changes.overflowed:
                    raise StatusError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      f"slow watcher: more than {self.watch_backlog} node changes were queued "
                                      "for this stream; watch again for a fresh snapshot")
                yield change

    @status_errors()
    async def Broadcast(
        self, request: pb.BroadcastRequest, context: grpc.aio.ServicerContext
    ) -> pb.BroadcastResponse:
        if not request.action_name:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "action_name is required")
        delivered = self.hub.broadcast(request.action_name, dict(request.params), everywhere=True)
        return pb.BroadcastResponse(delivered=delivered)  # counted on this core; other cores' nodes get it too

    @status_errors()
    async def ListCapabilities(
        self, request: pb.ListCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCapabilitiesResponse:
        return pb.ListCapabilitiesResponse(capabilities=[
            pb.OfferedCapability(tool_name=o.tool_name, node_id=o.node_id, node_kind=o.node_kind,
                                 capability=o.capability) for o in self.grid.offers()])

    @status_errors()
    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        if not request.name:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "name is required (a tool or capability name)")
        timeout_s = request.timeout_ms / 1000 if request.timeout_ms > 0 else DEFAULT_TIMEOUT_S
        done = await self.grid.invoke(request.name, request.arguments_json, request.preferred_node_id, timeout_s)
        return pb.InvokeResponse(node_id=done.node_id, capability=done.capability, result=done.result,
                                 latency_ms=done.latency_ms)


async def _first_envelope(requests: AsyncIterator[pb.AttachRequest],
                          context: grpc.aio.ServicerContext) -> pb.AttachRequest:
    try:
        first = await asyncio.wait_for(anext(requests, None), HELLO_TIMEOUT_S)
    except TimeoutError:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no hello within {HELLO_TIMEOUT_S:g}s")
    if first is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the stream ended before a hello")
        raise AssertionError("unreachable: abort raises")
    return first


def _transport_and_peer(context: grpc.aio.ServicerContext) -> tuple[int, str]:
    metadata = dict(context.invocation_metadata() or ())
    websocket = metadata.get(TRANSPORT_KEY) == "websocket"
    peer = str(metadata.get(PEER_KEY) or context.peer() or "")
    return (pb.TRANSPORT_WEBSOCKET if websocket else pb.TRANSPORT_GRPC), peer
