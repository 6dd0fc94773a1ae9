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


class PeerChannels:
    """One channel per peer address in this process, shared by every client of that peer.

    HTTP/2 multiplexes all calls to a server over one connection; a channel per
    client would open (and keep alive) one connection each for nothing. The
    composition root owns the instance and closes every channel at shutdown,
    after the clients that use them have stopped.
    """

    def __init__(self, token: str | None = None) -> None:
        self._token = token
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, self._token)
        return channel

    def __len__(self) -> int:
        return len(self._channels)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
