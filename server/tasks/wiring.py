"""The task service hosted on a server: its gRPC binding.

The wiring, kept apart so the domain (service.py) never imports the servicer
(servicer.py): wiring → servicer → service, no cycle. The in-process API and
the gRPC service share one `TaskService` (the composition root builds it).
"""

from __future__ import annotations

from peromesh.task.v1 import task_service_pb2 as pb
from peromesh.task.v1 import task_service_pb2_grpc as pb_grpc
from server.rpc.serving import ServiceBinding
from server.tasks.service import TaskService
from server.tasks.servicer import TaskServicer


def binding(service: TaskService) -> ServiceBinding:
    """TaskService over gRPC, for any server that hosts it."""
    return ServiceBinding(pb.DESCRIPTOR.services_by_name["TaskService"].full_name,
                          pb_grpc.add_TaskServiceServicer_to_server, TaskServicer(service))
