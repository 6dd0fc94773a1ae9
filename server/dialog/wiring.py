"""The dialog hosted on the core: its gRPC binding (the composition root builds the servicer)."""

from __future__ import annotations

from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.dialog.servicer import DialogServicer
from server.rpc.serving import ServiceBinding


def binding(servicer: DialogServicer) -> ServiceBinding:
    """DialogService over gRPC (Converse, ListTurns)."""
    return ServiceBinding("peromesh.dialog.v1.DialogService", pb_grpc.add_DialogServiceServicer_to_server,
                          servicer)
