"""The monitor hosted on the core: its flag, starting its sampler, serving MonitorService over gRPC.

The wiring, kept apart so the domain (service.py) never imports the servicer
(servicer.py) or the mesh: wiring → servicer → service, no cycle.
It is a `MonitorService` itself, so the in-process API (`ctx.shared["monitor"]`,
the bridge's `system_stats`) and the gRPC service are one object.
"""

from __future__ import annotations

import argparse

from peromesh.monitor.v1 import monitor_service_pb2 as pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from server.mesh.component import MeshContext
from server.monitor.service import DEFAULT_INTERVAL_S, MonitorService
from server.monitor.servicer import MonitorServicer
from server.rpc.serving import ServiceBinding


def binding(service: MonitorService) -> ServiceBinding:
    """MonitorService over gRPC, for any server that hosts it."""
    return ServiceBinding(pb.DESCRIPTOR.services_by_name["MonitorService"].full_name,
                          pb_grpc.add_MonitorServiceServicer_to_server, MonitorServicer(service))


class MonitorCoreService(MonitorService):
    """The core-hosted monitor (a `CoreService`)."""

    name = "monitor"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--monitor-interval", type=float, default=DEFAULT_INTERVAL_S,
                           help=f"seconds between system_stats samples (default {DEFAULT_INTERVAL_S:g})")

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        await self.open(float(ctx.settings.monitor_interval))
        return [binding(self)]
