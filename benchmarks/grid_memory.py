"""Session memory of the hub per 1,000 active nodes (seed 004: ≤ 10 MB / 1,000 sessions).

Run: .venv/bin/python benchmarks/grid_memory.py [--nodes 1000]

Measured with tracemalloc inside one process: the Python objects the hub
keeps per attached node — NodeInfo (with 3 registered capabilities, one with a
JSON Schema), NodeLink and its outbox, the resumable session entry and the
grid's view — after a hello and a register went through the hub exactly as
from an Attach stream (Hub.join / Hub.route), with the outbox drained as a
live stream would. The transport (gRPC call objects, HTTP/2 buffers, the
stream's reader task) is what grid_burst.py's RSS figure adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc

import grpc
import psutil
from grid_nodes import capabilities

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub
from server.hub.nodes import NodeLink
from server.tools.catalog import ToolCatalog

TOKEN = "bench-token"


def drain(link: NodeLink) -> None:
    while not link.outbox.empty():
        link.outbox.get_nowait()


def attach_all(hub: Hub, hellos: list[gw.Envelope], registers: list[gw.Envelope]) -> list[NodeLink]:
    links = []
    for hello, register in zip(hellos, registers, strict=True):
        link = hub.join(hello)
        drain(link)
        hub.route(link, register)
        drain(link)
        links.append(link)
    return links


def envelopes(n: int, prefix: str) -> tuple[list[gw.Envelope], list[gw.Envelope]]:
    hellos = [gw.Envelope(id="h", source_id=f"{prefix}-{i}", target_id="master",
                          hello=gw.Hello(token=TOKEN, platform="desktop", device_name=f"PC {i}")) for i in range(n)]
    registers = [gw.Envelope(id="r", source_id=f"{prefix}-{i}", target_id="master",
                             register=gw.CapabilityRegister(capabilities=capabilities(i))) for i in range(n)]
    return hellos, registers


def rss_pass(n: int) -> None:
    """Process RSS growth (counts protobuf's C arenas too, which tracemalloc does not see)."""
    process = psutil.Process()
    hub = Hub(TOKEN)
    grid = CapabilityGrid(hub)
    hellos, registers = envelopes(n, "rss")  # built before the baseline: they are the wire, not the hub
    gc.collect()
    base = process.memory_info().rss
    links = attach_all(hub, hellos, registers)
    ToolCatalog([], grid).tools()
    gc.collect()
    grown = process.memory_info().rss - base
    print(json.dumps({"bench": "grid_memory_rss", "nodes": n, "rss_mib_per_1000": round(grown * 1000 / n / 2**20, 2)}))
    print(f"process RSS growth with {n} nodes: {grown / 2**20:.2f} MiB = {grown * 1000 / n / 2**20:.2f} MiB "
          f"per 1,000 (protobuf arenas included)")
    for link in links:
        hub.leave(link, grpc.StatusCode.OK, "bench over")
    grid.close()


async def main(n: int) -> None:
    rss_pass(10 * n)
    hub = Hub(TOKEN)
    grid = CapabilityGrid(hub)
    catalog = ToolCatalog([], grid)
    hellos, registers = envelopes(n, "node")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    base, _ = tracemalloc.get_traced_memory()
    links = attach_all(hub, hellos, registers)
    tools = catalog.tools()  # the per-revision tool list cache too
    gc.collect()
    used, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(hub.nodes()) == n and sum(len(x.info.capabilities) for x in links) == 3 * n
    per_1000 = (used - base) * 1000 / n
    print(f"{n} nodes attached and registered ({3 * n} capabilities, {len(tools)} distinct tools)")
    print(f"hub session memory (tracemalloc, Python objects): {per_1000 / 2**20:.2f} MiB per 1,000 active nodes "
          f"({(used - base) / n / 1024:.1f} KiB per node; target ≤ 10 MB per 1,000); peak {peak / 2**20:.1f} MiB")
    print(json.dumps({"bench": "grid_memory", "nodes": n, "tracemalloc_mib_per_1000": round(per_1000 / 2**20, 2)}))
    print("largest contributors (by line):")
    for stat in after.compare_to(before, "lineno")[:6]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / n:8.0f} B/node  {frame.filename.split('/peromesh/')[-1]}:{frame.lineno}")
    for link in links:
        hub.leave(link, grpc.StatusCode.OK, "bench over")
    assert hub.nodes() == [] and catalog.tools() == []
    grid.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    asyncio.run(main(parser.parse_args().nodes))
