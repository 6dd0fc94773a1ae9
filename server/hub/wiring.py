"""The hub hosted on a server: its gRPC binding (the composition root builds the Hub itself)."""

from __future__ import annotations

from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub
from server.hub.servicer import HubServicer
from server.rpc.serving import ServiceBinding


def binding(hub: Hub, grid: CapabilityGrid) -> ServiceBinding:
    """HubService over gRPC: device links (Attach), capabilities and invocations."""
    return ServiceBinding("peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server,
                          HubServicer(hub, grid))
