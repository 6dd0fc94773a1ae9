"""A container health probe for deploy/compose.yaml: is this PeroMesh server ready?

    python deploy/healthcheck.py grpc 127.0.0.1:50052    # TTS, core: the gRPC health service
    python deploy/healthcheck.py http 127.0.0.1:8765     # bridge: its console page answers

Exit status 0 when ready, 1 otherwise. A gRPC server reports SERVING only once `start_mesh` has
it listening with its models warm, so compose's `depends_on: condition: service_healthy` starts
the cores after TTS and the bridges after the cores, the order scripts/cluster.sh waits for. The
health service answers without the mesh token (server/rpc/auth.py), so the probe needs none.
No grpc_health_probe binary: the image's own Python and grpcio do it.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_S = 3.0


async def grpc_serving(address: str, timeout_s: float = TIMEOUT_S) -> bool:
    """Whether the server at `address` reports its overall health ("") as SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def http_ok(address: str, timeout_s: float = TIMEOUT_S) -> bool:
    """Whether the bridge at `address` serves its console page (HTTP 200 at /)."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            response = await client.get(f"http://{address}/")
        except httpx.HTTPError:
            return False
    return response.status_code == 200


PROBES = {"grpc": grpc_serving, "http": http_ok}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PROBES:
        print(f"usage: healthcheck.py {{{','.join(PROBES)}}} HOST:PORT", file=sys.stderr)
        return 2
    return 0 if asyncio.run(PROBES[argv[0]](argv[1])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
