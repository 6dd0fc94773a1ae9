"""Hubs joined through real Redis in one process (cluster tests that need no child processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.cluster.hub_link import HubClusterLink
from server.hub.capabilities import DangerPolicy
from server.hub.hub import Hub, HubConfig
from server.hub.nodes import NodeLink

TOKEN = "cluster-token"


async def joined_hub(url: str, resume_grace_s: float = 60.0) -> tuple[Hub, HubClusterLink]:
    config = HubConfig(heartbeat_interval_s=0.5, heartbeat_timeout_s=2.0, resume_grace_s=resume_grace_s)
    hub = Hub(TOKEN, config, DangerPolicy.of(()))
    await hub.start()
    link = HubClusterLink(hub, url)
    await link.start()
    return hub, link


def join(hub: Hub, node_id: str, *capabilities: gw.Capability) -> NodeLink:
    link = hub.join(gw.Envelope(id="hello", source_id=node_id, target_id="master",
                                hello=gw.Hello(token=TOKEN, platform="test")))
    if capabilities:
        hub.route(link, gw.Envelope(id="reg", register=gw.CapabilityRegister(capabilities=list(capabilities))))
    return link


async def until(check: Callable[[], bool], wait_s: float = 5.0) -> None:
    async with asyncio.timeout(wait_s):
        while not check():  # noqa: ASYNC110 - the state changes in Redis and another hub: no event here
            await asyncio.sleep(0.02)
