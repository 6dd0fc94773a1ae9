"""The task service hosted on the core: opening its database and serving TaskService over gRPC.

The wiring, kept apart so the domain (service.py) never imports the servicer
(servicer.py) or the mesh: wiring → servicer → service, no cycle.
It is a `TaskService` itself, so the in-process API (`ctx.shared["tasks"]`) and
the gRPC service are one object.
"""

from __future__ import annotations

import argparse

from peromesh.task.v1 import task_service_pb2 as pb
from peromesh.task.v1 import task_service_pb2_grpc as pb_grpc
from server.mesh.component import MeshContext
from server.rpc.serving import ServiceBinding
from server.tasks.service import TaskService
from server.tasks.servicer import TaskServicer


def binding(service: TaskService) -> ServiceBinding:
    """TaskService over gRPC, for any server that hosts it."""
    return ServiceBinding(pb.DESCRIPTOR.services_by_name["TaskService"].full_name,
                          pb_grpc.add_TaskServiceServicer_to_server, TaskServicer(service))


class TaskCoreService(TaskService):
    """The core-hosted task service (a `CoreService`)."""

    name = "tasks"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Tasks have no flags; their tables follow --db-url."""

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        await self.open(ctx.db_url("tasks"))
        return [binding(self)]
