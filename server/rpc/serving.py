"""One way to run a gRPC server: health, reflection, auth, limits, shutdown.

Every PeroMesh server is built here so `grpcurl list/describe` and health
probes work on all of them, and shutdown is always two-phase (health
NOT_SERVING first, so balancers drain, then stop with a grace period).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.rpc.auth import BearerAuthInterceptor, is_loopback
from server.rpc.decoding import DecodingInterceptor
from server.rpc.reflection import enable_reflection

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer plus what it takes to register and advertise it."""

    full_name: str  # e.g. "peromesh.dialog.v1.DialogService"
    register: Callable[[Any, grpc.aio.Server], None]  # the generated add_..._to_server
    servicer: Any


@dataclass
class GrpcServer:
    """A started server; `stop()` performs the two-phase shutdown."""

    name: str
    host: str
    port: int
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    services: Sequence[str] = field(default_factory=tuple)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float = 2.0) -> None:
        for service in ("", *self.services):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)
        log.info("%s server stopped", self.name)


def auth_token_for(host: str, token: str | None, allow_unauthenticated_loopback: bool = False) -> str | None:
    """The token the server must demand: always, unless explicitly opened on loopback.

    Loopback is no boundary on a shared machine (any local process or a web page's
    fetch could call `DeleteMemory` or `Invoke`), so a token is the default there too.
    """
    if token:
        return token
    if not is_loopback(host):
        raise ValueError(f"refusing to listen on {host!r} without a token: set --token / PEROMESH_TOKEN")
    if not allow_unauthenticated_loopback:
        raise ValueError(f"refusing to serve gRPC on {host!r} without a token: pass the mesh token, "
                         "or --allow-unauthenticated-loopback to open loopback to every local process")
    return None


async def start_server(
    name: str,
    bindings: Sequence[ServiceBinding],
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    *,
    allow_unauthenticated_loopback: bool = False,
) -> GrpcServer:
    """Build, bind and start a server; port 0 picks a free port.

    Interceptors, outermost first: auth (refuses before anything is decoded),
    then request decoding (undecodable bytes are INVALID_ARGUMENT).
    """
    required = auth_token_for(host, token, allow_unauthenticated_loopback)
    interceptors: list[grpc.aio.ServerInterceptor] = [BearerAuthInterceptor(required)] if required else []
    interceptors.append(DecodingInterceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for binding in bindings:
        binding.register(binding.servicer, server)
    names = [b.full_name for b in bindings]
    enable_reflection([*names, health.SERVICE_NAME], server)  # with the contracts' comments
    bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if bound == 0:
        raise OSError(f"{name}: cannot bind {host}:{port}")
    await server.start()
    for service in ("", *names):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s server listening on %s:%d%s", name, host, bound, " (token required)" if required else "")
    return GrpcServer(name, host, bound, server, health_servicer, tuple(names))
