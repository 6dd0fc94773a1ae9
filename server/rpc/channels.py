"""Client channels to other PeroMesh servers (the same path embedded or remote)."""

from __future__ import annotations

import grpc

from server.rpc.auth import bearer_interceptors
from server.rpc.serving import MAX_MESSAGE_BYTES


def open_channel(address: str, token: str | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.aio.Channel:
    """An insecure channel (loopback or a private network) whose every call carries `token`."""
    return grpc.aio.insecure_channel(
        address,
        interceptors=bearer_interceptors(token) if token else None,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.enable_retries", 0),
        ],
    )
