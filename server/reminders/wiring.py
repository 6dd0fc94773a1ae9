"""The reminder service hosted on a server: its gRPC binding.

Kept apart from the domain (service.py) and the gRPC mapping (servicer.py) so
that neither imports the other's side: wiring → servicer → service, no cycle.
"""

from __future__ import annotations

from peromesh.reminder.v1 import reminder_service_pb2_grpc as pb_grpc
from server.reminders.service import ReminderService
from server.reminders.servicer import ReminderServicer
from server.rpc.serving import ServiceBinding

SERVICE_NAME = "peromesh.reminder.v1.ReminderService"


def binding(service: ReminderService) -> ServiceBinding:
    """ReminderService over gRPC, for any server that hosts it (the core, the standalone runner)."""
    return ServiceBinding(SERVICE_NAME, pb_grpc.add_ReminderServiceServicer_to_server, ReminderServicer(service))
