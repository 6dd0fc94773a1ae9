"""A real hub on a real gRPC server (127.0.0.1:0) and native Attach clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.hub import Hub, HubConfig
from server.hub.servicer import HubServicer
from server.hub.watch import WATCH_BACKLOG
from server.rpc.serving import ServiceBinding, start_server

from .hub_harness import TOKEN, HubHarness


@pytest.fixture
def hub_config() -> HubConfig:
    return HubConfig(heartbeat_interval_s=0.2, heartbeat_timeout_s=30.0, resume_grace_s=30.0)


@pytest.fixture
def watch_backlog() -> int:
    return WATCH_BACKLOG


@pytest.fixture
async def harness(hub_config: HubConfig, watch_backlog: int) -> AsyncIterator[HubHarness]:
    hub = Hub(TOKEN, hub_config)
    await hub.start()
    servicer = HubServicer(hub, watch_backlog=watch_backlog)
    server = await start_server("hub-test", [ServiceBinding(
        "peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server, servicer)], token=TOKEN)
    h = HubHarness(hub, server)
    try:
        yield h
    finally:
        for node in h.nodes:
            node.call.cancel()
        await h.channel.close()
        await hub.close()
        await server.stop(0.5)
