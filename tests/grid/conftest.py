"""A real hub with the capability grid on a real gRPC server (127.0.0.1:0), and native nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.capabilities import CapabilityGrid, DangerPolicy
from server.hub.hub import Hub, HubConfig
from server.hub.servicer import HubServicer
from server.rpc.channels import open_channel
from server.rpc.serving import ServiceBinding, start_server

from .grid_node import TOKEN, GridNode


class Grid:
    def __init__(self, hub: Hub, grid: CapabilityGrid, stub: pb_grpc.HubServiceStub) -> None:
        self.hub = hub
        self.grid = grid
        self.stub = stub
        self.nodes: list[GridNode] = []

    async def node(self, node_id: str, platform: str) -> GridNode:
        node = GridNode(self.stub, node_id, platform)
        self.nodes.append(node)
        await node.attach()
        return node


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig(heartbeat_interval_s=0.2, heartbeat_timeout_s=30.0, resume_grace_s=5.0)


@pytest.fixture
def allowed_dangerous() -> tuple[str, ...]:
    """--allow-dangerous of the grid under test (a test module may override this fixture)."""
    return ("power.reboot",)


@pytest.fixture
async def grid(hub_config: HubConfig, allowed_dangerous: tuple[str, ...]) -> AsyncIterator[Grid]:
    hub = Hub(TOKEN, hub_config, DangerPolicy.of(allowed_dangerous))
    await hub.start()
    capabilities = CapabilityGrid(hub)  # the hub's policy: Invoke, tools and node-to-node routing agree
    server = await start_server("grid-test", [ServiceBinding(
        "peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server, HubServicer(hub, capabilities))],
        token=TOKEN)
    channel = open_channel(server.address, TOKEN)
    g = Grid(hub, capabilities, pb_grpc.HubServiceStub(channel))
    try:
        yield g
    finally:
        for node in g.nodes:
            await node.close()
        await channel.close()
        capabilities.close()
        await hub.close()
        await server.stop(0.5)


async def eventually(check: Callable[[], bool | Awaitable[bool]], wait_s: float = 5.0) -> None:
    """Poll `check` until it holds (the hub handles a node's envelopes asynchronously)."""
    import asyncio

    async with asyncio.timeout(wait_s):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.01)
