"""Seed 004 targets for the grid: a registration burst and the hub's memory per 1,000 nodes.

Run: .venv/bin/python benchmarks/grid_burst.py [--nodes 1000] [--channels 16]

A hub-only child process (grid_server.py) on loopback; this process opens
`--channels` HTTP/2 connections and starts `--nodes` native Attach streams at
once, each doing hello → welcome → register (3 capabilities, one with a JSON
Schema checked by the hub) → OK. Printed:
- registration success rate (target ≥ 99.5%) and latency percentiles;
- the hub process's RSS growth with the nodes attached, per 1,000 nodes
  (target ≤ 10 MB), measured after a warm-up round so one-time allocations
  (gRPC pools, imports) do not count; and after they detach again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import time

import psutil
from grid_nodes import Node
from grid_server import hub_process

from peromesh.hub.v1 import hub_service_pb2 as pb
from peromesh.hub.v1 import hub_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


async def burst(address: str, token: str, n: int, channels: int, prefix: str) -> tuple[list[Node], list[float], int]:
    chans = [open_channel(address, token) for _ in range(channels)]
    stubs = [pb_grpc.HubServiceStub(c) for c in chans]
    nodes = [Node(stubs[i % channels], f"{prefix}-{i}", token) for i in range(n)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(node.register(i) for i, node in enumerate(nodes)))
    wall = time.perf_counter() - started
    failures = [o for o in outcomes if not o.ok]
    for f in failures[:3]:
        print("  failure:", f.error[:200])
    print(f"  {prefix}: {n - len(failures)}/{n} registered in {wall:.2f} s "
          f"({(n - len(failures)) / n:.2%} success)")
    burst.channels = chans  # type: ignore[attr-defined]
    return nodes, sorted(o.seconds for o in outcomes if o.ok), len(failures)


async def attached(stub: pb_grpc.HubServiceStub) -> int:
    return len((await stub.ListNodes(pb.ListNodesRequest())).nodes)


async def settle(stub: pb_grpc.HubServiceStub, expected: int, wait_s: float = 30) -> None:
    deadline = time.monotonic() + wait_s
    for _ in range(int(wait_s * 10)):  # the hub notices closed streams asynchronously
        if await attached(stub) == expected or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


async def main(n: int, channels: int) -> None:
    token = secrets.token_urlsafe(16)
    with hub_process(token) as (address, pid):
        proc = psutil.Process(pid)
        async with open_channel(address, token) as control:
            stub = pb_grpc.HubServiceStub(control)
            print(f"hub child pid {pid} at {address}; {n} nodes over {channels} channels")
            await asyncio.sleep(1.0)
            cold = proc.memory_info().rss
            # warm-up round: let the hub, gRPC and the allocator reach their working set
            nodes, _, _ = await burst(address, token, n, channels, "warm")
            await settle(stub, n)
            first = proc.memory_info().rss
            for node in nodes:
                node.close()
            for c in burst.channels:  # type: ignore[attr-defined]
                await c.close()
            await settle(stub, 0)
            gc.collect()
            await asyncio.sleep(1.0)
            base = proc.memory_info().rss
            nodes, latencies, failed = await burst(address, token, n, channels, "node")
            await settle(stub, n)
            await asyncio.sleep(1.0)
            loaded = proc.memory_info().rss
            print(f"registration burst: {n - failed}/{n} = {(n - failed) / n:.2%} (target ≥ 99.5%)")
            if latencies:
                q = statistics.quantiles(latencies, n=100, method="inclusive")
                print(f"  hello→registered latency: p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
                      f"p99 {q[98] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
            print(f"hub RSS: {mib(base)} idle → {mib(loaded)} with {await attached(stub)} nodes attached")
            print(f"  growth per 1,000 attached nodes: {mib((loaded - base) * 1000 / n)} steady state "
                  f"(target ≤ 10 MB); first round from a fresh hub: {mib((first - cold) * 1000 / n)} "
                  f"({mib(cold)} → {mib(first)}, includes one-time gRPC and allocator growth)")
            for node in nodes:
                node.close()
            for c in burst.channels:  # type: ignore[attr-defined]
                await c.close()
            await settle(stub, 0)
            await asyncio.sleep(1.0)
            print(f"  after all detached: {mib(proc.memory_info().rss)}")
            q = statistics.quantiles(latencies, n=100, method="inclusive") if latencies else [0.0] * 99
            print(json.dumps({"bench": "grid_burst", "nodes": n, "registered": n - failed,
                              "success_rate": (n - failed) / n, "p50_ms": round(q[49] * 1000, 1),
                              "p99_ms": round(q[98] * 1000, 1),
                              "rss_mib_per_1000_steady": round((loaded - base) * 1000 / n / 2**20, 2),
                              "rss_mib_per_1000_first": round((first - cold) * 1000 / n / 2**20, 2)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.channels))
