"""Services hosted on the core's gRPC server next to DialogService.

The design puts the hub, tasks, reminders and the monitor in the core
process (one port, one place where devices meet). Each is a `CoreService`;
the core starts them in this order before DialogService and exposes each
instance as `ctx.shared[name]` so the dialog can use them in-process.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from server.mesh.component import MeshContext
from server.rpc.serving import ServiceBinding


class CoreService(Protocol):
    name: str

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Flags of this service (shown under the core's group)."""

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        """Prepare state and return the gRPC services to register on the core server."""
        ...

    async def stop(self) -> None: ...


def core_services() -> list[CoreService]:
    """The core-hosted services, in start order (append new ones here)."""
    from server.cluster.service import ClusterCoreService
    from server.hub.service import HubService
    from server.monitor.wiring import MonitorCoreService
    from server.reminders.wiring import ReminderCoreService
    from server.tasks.wiring import TaskCoreService
    from server.tools.service import ToolGridService

    services: list[CoreService] = [HubService()]  # first: the others broadcast through ctx.shared["hub"]
    services.append(ClusterCoreService())  # joins that hub to the other cores (--cluster-url), before nodes attach
    # ctx.shared: reminders, tasks, monitor (each the domain object itself, plus its flags and binding)
    services += [ReminderCoreService(), TaskCoreService(), MonitorCoreService()]
    services.append(ToolGridService())  # last: wires the ones above into devices (broadcasts) and the dialog
    return services
