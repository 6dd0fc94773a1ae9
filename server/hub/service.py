"""The hub as a core-hosted service (registered first in core_services)."""

from __future__ import annotations

import argparse

from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.capabilities import CapabilityGrid, DangerPolicy
from server.hub.hub import Hub, HubConfig
from server.hub.servicer import HubServicer
from server.mesh.component import MeshContext
from server.rpc.serving import ServiceBinding


class HubService:
    """Starts the Hub, shares it as `ctx.shared["hub"]` and serves HubService.

    Named "hub_service" because the core also files every core service under
    its own name in ctx.shared; "hub" is the Hub itself (the in-process API).
    """

    name = "hub_service"

    def __init__(self) -> None:
        self.hub: Hub | None = None
        self.grid: CapabilityGrid | None = None

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--hub-heartbeat-interval", type=float, default=10.0,
                           help="seconds between node heartbeats (told to nodes in the welcome)")
        group.add_argument("--hub-heartbeat-timeout", type=float, default=30.0,
                           help="drop a node silent for this many seconds")
        group.add_argument("--hub-resume-grace", type=float, default=60.0,
                           help="seconds a disconnected device can reconnect into the same session")
        group.add_argument("--allow-dangerous", default="", metavar="NAME[,NAME]",
                           help="dangerous node capabilities (shell, shutdown) that may be invoked, by capability "
                                "or tool name; all others marked dangerous are refused")

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        token = ctx.shared.get("gateway_token") or ctx.token
        if not token:
            raise ValueError("the hub needs a gateway token (ctx.shared['gateway_token'] or --token)")
        settings = ctx.settings
        config = HubConfig(heartbeat_interval_s=getattr(settings, "hub_heartbeat_interval", 10.0),
                           heartbeat_timeout_s=getattr(settings, "hub_heartbeat_timeout", 30.0),
                           resume_grace_s=getattr(settings, "hub_resume_grace", 60.0))
        allowed = str(getattr(settings, "allow_dangerous", "") or "").split(",")
        self.hub = Hub(token, config, DangerPolicy.of(allowed))  # routing and the grid share it
        await self.hub.start()
        ctx.shared["hub"] = self.hub
        self.grid = CapabilityGrid(self.hub)
        ctx.shared["grid"] = self.grid  # capabilities of the attached nodes, and invoking them
        return [ServiceBinding("peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server,
                               HubServicer(self.hub, self.grid))]

    async def stop(self) -> None:
        if self.grid is not None:
            self.grid.close()
        if self.hub is not None:
            await self.hub.close()
