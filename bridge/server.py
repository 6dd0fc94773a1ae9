"""The bridge's WebSocket server: `/ws` for the Gateway protocol, the console at `/`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus

import grpc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.hub.v1 import hub_service_pb2_grpc as hpb_grpc
from peromesh.tts.v1 import tts_service_pb2_grpc as tpb_grpc
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel
from server.wire.attach import EmbeddedHub, LinkT

from . import core_targets
from .connection import GatewayConnection, MeshStubs
from .hub_port import GrpcHubPort, HubPort, LocalHubPort
from .limits import Limits
from .origins import OriginPolicy
from .static_files import StaticSite

log = logging.getLogger(__name__)
WRITE_LIMIT = 64 * 1024  # bytes buffered per socket before send() waits (then our queue absorbs bursts)


@dataclass
class BridgeServer:
    """A started bridge; `stop()` closes every client (1001) and the core channel."""

    server: Server
    channel: grpc.aio.Channel
    host: str
    port: int
    connections: set[GatewayConnection]
    tts_channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://{self.address}/ws"

    async def stop(self) -> None:
        self.server.close(close_connections=True)
        await self.server.wait_closed()
        await self.channel.close()
        if self.tts_channel is not None:
            await self.tts_channel.close()
        log.info("bridge stopped")


async def start_bridge(core_address: str, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                       limits: Limits | None = None, local_hub: EmbeddedHub[LinkT] | None = None,
                       origins: OriginPolicy | None = None, tts_address: str | None = None) -> BridgeServer:
    """Serve the Gateway protocol on ws://host:port/ws in front of the core at `core_address`.

    With `local_hub` (the core runs in this process: its `Hub`, through the port
    `server.wire.attach.EmbeddedHub`) nodes attach to it directly;
    otherwise each node gets a HubService.Attach stream to the core. `origins` says which web
    pages may open /ws (default: this bridge's own and native clients; see bridge/origins.py).
    `tts_address`: the TTS server whose voices `voices:list` offers (None: it answers UNAVAILABLE).
    """
    limits = limits or Limits()
    channel = open_channel(await core_targets.channel_target(core_address))  # "A,B": failover in order
    metadata = bearer_metadata(token)
    hub_stub = hpb_grpc.HubServiceStub(channel)

    def hub_port() -> HubPort:
        return LocalHubPort(local_hub) if local_hub is not None else GrpcHubPort(hub_stub, metadata)

    tts_channel = open_channel(tts_address) if tts_address else None
    stubs = MeshStubs(hub_port, dpb_grpc.DialogServiceStub(channel), metadata,
                      tts=tpb_grpc.TtsServiceStub(tts_channel) if tts_channel is not None else None)
    connections: set[GatewayConnection] = set()

    async def handle(ws: ServerConnection) -> None:
        connection = GatewayConnection(ws, stubs, limits)
        connections.add(connection)
        try:
            await connection.run()
        finally:
            connections.discard(connection)

    site, policy = StaticSite(), origins or OriginPolicy()

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == site.ws_path and (refusal := policy.refusal(request)) is not None:
            log.info("refused a WebSocket handshake: %s", refusal)
            return connection.respond(HTTPStatus.FORBIDDEN, refusal + "\n")
        return site.process_request(connection, request)

    server = await serve(handle, host, port, process_request=process_request,
                         max_size=limits.hard_frame_bytes, max_queue=32, write_limit=WRITE_LIMIT,
                         compression=None, close_timeout=5, ping_interval=20, ping_timeout=20)
    bound = next(iter(server.sockets)).getsockname()[1]
    log.info("bridge listening on ws://%s:%d/ws (hub %s)", host, bound, "in-process" if local_hub else "over gRPC")
    return BridgeServer(server, channel, host, bound, connections, tts_channel)
