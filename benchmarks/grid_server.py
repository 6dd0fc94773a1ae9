"""A hub with the capability grid alone, as a child process for the grid benchmarks.

Run by grid_burst.py / grid_memory.py: `python benchmarks/grid_server.py TOKEN`
prints "ADDRESS PID" once serving, then runs until its stdin closes. Only the
hub runs here, so the child's RSS is what attached nodes cost the hub.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub, HubConfig
from server.hub.servicer import HubServicer
from server.rpc.serving import ServiceBinding, start_server


async def main(token: str) -> None:
    hub = Hub(token, HubConfig(heartbeat_interval_s=30, heartbeat_timeout_s=120, outbox_capacity=256))
    await hub.start()
    grid = CapabilityGrid(hub)
    server = await start_server("grid-bench", [ServiceBinding(
        "peromesh.hub.v1.HubService", pb_grpc.add_HubServiceServicer_to_server, HubServicer(hub, grid))], token=token)
    print(server.address, os.getpid(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await hub.close()
    await server.stop(1)


@contextmanager
def hub_process(token: str) -> Iterator[tuple[str, int]]:
    """Start the child; yields (address, pid)."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), token], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    address, pid = proc.stdout.readline().split()
    try:
        yield address, int(pid)
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
