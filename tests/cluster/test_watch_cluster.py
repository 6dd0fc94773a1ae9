"""HubService.WatchNodes across two hubs joined through real Redis (in one process, each hub on its
own gRPC server): the snapshot lists both cores' nodes, every change on either core reaches the
watchers of both, once, with its reason; a dead core's nodes leave as expired, a stopped core's
with the shutdown reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.cluster.hub_link import SHUTDOWN_REASON, HubClusterLink
from server.hub.hub import Hub
from server.hub.servicer import HubServicer
from server.hub.watch import EXPIRED_REASON, MOVED_HERE_REASON
from server.rpc.serving import GrpcServer, ServiceBinding, start_server
from tests.cluster.hubs import TOKEN, join, joined_hub, until
from tests.cluster.watching import NodeWatcher

JOINED, UPDATED, LEFT = pb.NODE_CHANGE_JOINED, pb.NODE_CHANGE_UPDATED, pb.NODE_CHANGE_LEFT
PRESENT = pb.NODE_CHANGE_PRESENT


class Core:
    """One hub joined to the cluster, serving HubService."""

    def __init__(self, hub: Hub, link: HubClusterLink, server: GrpcServer) -> None:
        self.hub, self.link, self.server = hub, link, server

    @classmethod
    async def start(cls, url: str) -> Core:
        hub, link = await joined_hub(url)
        server = await start_server("hub", [ServiceBinding(
            "peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server, HubServicer(hub))], token=TOKEN)
        return cls(hub, link, server)

    async def watch(self) -> NodeWatcher:
        return NodeWatcher(self.server.address, TOKEN)

    async def stop(self) -> None:
        await self.server.stop(0)
        await self.link.close()
        await self.hub.close()


@pytest.fixture
async def cores(cluster_url: str) -> AsyncIterator[tuple[Core, Core]]:
    one, two = await Core.start(cluster_url), await Core.start(cluster_url)
    yield one, two
    for core in (one, two):
        await core.stop()


def _remote(hub: Hub) -> list[str]:
    return [n.node_id for n in hub.remote_nodes()]


async def test_every_change_on_either_core_reaches_both_watchers_once(cores: tuple[Core, Core]) -> None:
    one, two = cores
    a1, b1 = join(one.hub, "a1"), join(two.hub, "b1")
    await until(lambda: _remote(one.hub) == ["b1"] and _remote(two.hub) == ["a1"])
    w1, w2 = await one.watch(), await two.watch()
    try:
        for w in (w1, w2):  # the snapshot: every core's nodes, as ListNodes has them
            await w.until(lambda seen: len(seen) == 2)
            assert w.seen() == [(PRESENT, "a1", ""), (PRESENT, "b1", "")]

        b2 = join(two.hub, "b2")  # a node attaches to core 2, registers, leaves
        await until(lambda: "b2" in _remote(one.hub))
        echo = gw.CapabilityRegister(capabilities=[gw.Capability(name="echo")])
        two.hub.route(b2, gw.Envelope(id="reg", register=echo))
        updated = await w1.until_seen(UPDATED, "b2")
        assert [c.name for c in updated.node.capabilities] == ["echo"]
        two.hub.leave(b2, grpc.StatusCode.OK, "the node closed its stream")
        a2 = join(one.hub, "a2")  # one attaches to core 1 and leaves
        await until(lambda: "a2" in _remote(two.hub))
        one.hub.leave(a2, grpc.StatusCode.DEADLINE_EXCEEDED, "heartbeat timeout")
        for w in (w1, w2):  # in order per node (two nodes' changes on two cores may interleave)
            await w.until_seen(LEFT, "a2")
            await w.until_seen(LEFT, "b2")
            assert w.seen("b2") == [(JOINED, "b2", ""), (UPDATED, "b2", ""), (LEFT, "b2", "the node closed its stream")]
            assert w.seen("a2") == [(JOINED, "a2", ""), (LEFT, "a2", "heartbeat timeout")]

        # b1 attaches to core 1 while core 2 still holds its old link, which then ends
        join(one.hub, "b1")
        two.hub.leave(b1, grpc.StatusCode.ABORTED, "the old connection ended")
        await w1.until(lambda seen: len(w1.seen("b1")) == 3)
        await w2.until(lambda seen: len(w2.seen("b1")) == 3)
        assert w1.seen("b1")[1:] == [(LEFT, "b1", MOVED_HERE_REASON), (JOINED, "b1", "")]
        assert w2.seen("b1")[1:] == [(LEFT, "b1", "the old connection ended"), (JOINED, "b1", "")]

        await asyncio.sleep(2 * one.link.refresh_s)  # presence refreshes in between: still nothing more
        assert len(w1.changes) == len(w2.changes) == 2 + 5 + 2
        assert a1.closing is None
    finally:
        await w1.close()
        await w2.close()


async def test_a_dead_cores_nodes_leave_as_expired_a_stopped_cores_with_the_reason(cluster_url: str) -> None:
    watching, dying, stopping = [await Core.start(cluster_url) for _ in range(3)]
    join(dying.hub, "dead-node")
    join(stopping.hub, "stopped-node")
    await until(lambda: _remote(watching.hub) == ["dead-node", "stopped-node"])
    watcher = await watching.watch()
    try:
        await watcher.until(lambda seen: len(seen) == 2)
        await dying.link._tasks.close()  # no more refreshes, no goodbye: what kill -9 leaves behind
        await dying.link._bus.close()
        started = asyncio.get_running_loop().time()
        gone = await watcher.until_seen(LEFT, "dead-node", 3.0)
        took = asyncio.get_running_loop().time() - started
        assert gone.reason == EXPIRED_REASON
        assert took <= watching.hub.config.heartbeat_timeout_s, took

        await stopping.stop()
        assert (await watcher.until_seen(LEFT, "stopped-node")).reason == SHUTDOWN_REASON
        assert watcher.seen() == [(PRESENT, "dead-node", ""), (PRESENT, "stopped-node", ""),
                                  (LEFT, "dead-node", EXPIRED_REASON), (LEFT, "stopped-node", SHUTDOWN_REASON)]
    finally:
        await watcher.close()
        await watching.stop()
        await dying.server.stop(0)
        await dying.link._client.aclose()
        await dying.hub.close()
