"""The monitor hosted on a server: its gRPC binding.

The wiring, kept apart so the domain (service.py) never imports the servicer
(servicer.py): wiring → servicer → service, no cycle. The in-process API (the
bridge's `system_stats` broadcasts) and the gRPC service share one `MonitorService`.
"""

from __future__ import annotations

from peromesh.monitor.v1 import monitor_service_pb2 as pb
from peromesh.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from server.monitor.service import MonitorService
from server.monitor.servicer import MonitorServicer
from server.rpc.serving import ServiceBinding


def binding(service: MonitorService) -> ServiceBinding:
    """MonitorService over gRPC, for any server that hosts it."""
    return ServiceBinding(pb.DESCRIPTOR.services_by_name["MonitorService"].full_name,
                          pb_grpc.add_MonitorServiceServicer_to_server, MonitorServicer(service))
