"""The cluster link as a core-hosted service: joins the core's hub to the other cores on
`--cluster-url` (started right after the hub, before any node can attach; nothing without it)."""

from __future__ import annotations

import argparse

from server.cluster.hub_link import HubClusterLink
from server.hub.hub import Hub
from server.mesh.component import MeshContext
from server.rpc.serving import ServiceBinding


class ClusterCoreService:
    name = "cluster"

    def __init__(self) -> None:
        self.link: HubClusterLink | None = None

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """None of its own: --cluster-url is a flag of every server."""

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        hub = ctx.shared.get("hub")
        if ctx.cluster_url and isinstance(hub, Hub):
            self.link = HubClusterLink(hub, ctx.cluster_url)
            await self.link.start()
        return []

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.close()
