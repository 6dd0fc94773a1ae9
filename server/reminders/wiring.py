"""The reminder service as the core hosts it: its flags and its gRPC binding.

Kept apart from the domain (service.py) and the gRPC mapping (servicer.py) so
that neither imports the other's side: wiring → servicer → service, no cycle.
"""

from __future__ import annotations

import argparse

from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.mesh.component import MeshContext
from server.reminders.service import DEFAULT_LEASE_S, DEFAULT_MISFIRE_GRACE_S, ReminderService, local_timezone
from server.reminders.servicer import ReminderServicer
from server.rpc.serving import ServiceBinding

SERVICE_NAME = "peromesh.reminder.v1.ReminderService"


def binding(service: ReminderService) -> ServiceBinding:
    """ReminderService over gRPC, for any server that hosts it (the core, the standalone runner)."""
    return ServiceBinding(SERVICE_NAME, pb_grpc.add_ReminderServiceServicer_to_server, ReminderServicer(service))


class ReminderCoreService(ReminderService):
    """A `CoreService`: the domain object itself (shared as ctx.shared["reminders"]), plus flags."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--reminder-timezone", default=None,
                           help="IANA zone for reminder phrases without one (default: this machine's)")
        group.add_argument("--reminder-misfire-grace", type=float, default=DEFAULT_MISFIRE_GRACE_S,
                           help="seconds a reminder may fire late (e.g. after downtime); older ones are "
                                "reported MISSED, never dropped")
        group.add_argument("--reminder-lease", type=float, default=DEFAULT_LEASE_S,
                           help="seconds of the scheduler lease among cores on one database: a dead "
                                "leader's reminders fire on another core within this (plus a third)")
        group.add_argument("--reminder-replay-window", type=float, default=24 * 3600.0,
                           help="seconds: a device that reconnects gets the reminders it missed; those "
                                "fired longer ago than this are delivered marked missed")

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        settings = ctx.settings
        await self.open(ctx.db_url("reminders"),
                        timezone=getattr(settings, "reminder_timezone", None) or local_timezone(),
                        misfire_grace_s=getattr(settings, "reminder_misfire_grace", DEFAULT_MISFIRE_GRACE_S),
                        lease_s=getattr(settings, "reminder_lease", DEFAULT_LEASE_S))
        return [binding(self)]
