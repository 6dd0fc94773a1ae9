"""Broadcast fan-out through hub + bridge to many WebSocket clients, and the memory an idle one costs.

Starts a real `peromesh serve` (tts, core with the hub, bridge), connects N clients (default 1,000,
each a full Gateway session: WebSocket, hello → hub attachment → welcome, dialog Converse; light
raw-socket clients, see raw_ws_client.py, so the harness is not the bottleneck), then:
- rss_per_1000_idle_connections: the serve process's RSS growth per 1,000 connected idle clients (MiB);
- bridge_broadcast_delivery: one client broadcasts; time from its send to each other client's receipt,
  p50/p99 over all deliveries of R rounds (goal ≤ 50 ms p99); also the p50/p99 of each round's last delivery;
- the CPU time the serve process and the receiving clients spend per broadcast (wall-clock latency on a
  shared machine depends on its load; the CPU figures do not).

Usage: .venv/bin/python benchmarks/bridge_broadcast.py [--clients 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from _serve import serve  # noqa: E402
from bridge_report import report  # noqa: E402
from raw_ws_client import RawClient, open_raw  # noqa: E402

from peromesh.gateway.v1 import envelope_pb2 as gw  # noqa: E402
from tests.bridge.gateway_client import GatewayClient  # noqa: E402

TOKEN = "bench-token"


def cpu_ms(pid: int) -> float:
    """On-CPU time of every thread of `pid` in ms (schedstat: nanoseconds, unlike 10 ms clock ticks)."""
    return sum(int(p.read_text().split()[0]) for p in Path(f"/proc/{pid}/task").glob("*/schedstat")) / 1e6


def serve_process() -> psutil.Process:
    [child] = [p for p in psutil.Process().children(recursive=True) if "peromesh" in " ".join(p.cmdline())]
    return child


async def open_clients(url: str, count: int, arrivals: dict[str, list[float]], parallel: int = 32,
                       prefix: str = "idle", token: str = TOKEN) -> list[RawClient]:
    """Full Gateway sessions (hello → welcome) on light raw-socket clients that only timestamp frames."""
    host, port = url.split("/")[2].rsplit(":", 1)
    gate = asyncio.Semaphore(parallel)

    def arrived(now: float, frame: bytes) -> None:
        if b"bench" in frame:  # decoded after the measurement would be as good; this is cheap enough
            envelope = gw.Envelope.FromString(frame)
            arrivals.setdefault(envelope.request.params["round"], []).append(now)

    async def one(i: int) -> RawClient:
        async with gate:
            client = await open_raw(host, int(port), "/ws", arrived)
            client.send(gw.Envelope(id="h", source_id=f"{prefix}-{i:05d}",
                                    hello=gw.Hello(token=token)).SerializeToString())
            welcome = gw.Envelope.FromString(await client.first_frame)
            assert welcome.HasField("welcome"), welcome
            return client

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def run(clients: int, rounds: int) -> None:
    flags = ("--llm", "scripted", "--token", TOKEN, "--hub-heartbeat-timeout", "900")
    with serve(*flags, only="tts,core,bridge") as endpoints:
        url = f"ws://{endpoints['bridge']}/ws"
        server = serve_process()
        sender = await GatewayClient.open(url, "sender", token=TOKEN, binary=True)
        await asyncio.sleep(1.0)
        rss_before = server.memory_info().rss
        started = time.perf_counter()
        arrivals: dict[str, list[float]] = {}
        receivers = await open_clients(url, clients, arrivals)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(3.0)
        gc.collect()
        rss_after = server.memory_info().rss
        per_1000 = (rss_after - rss_before) / clients * 1000 / 2**20
        report("rss_per_1000_idle_connections", [per_1000], unit="MiB", clients=clients,
               rss_before_mib=round(rss_before / 2**20, 1), rss_after_mib=round(rss_after / 2**20, 1),
               connect_s=round(connect_s, 2))
        deliveries, lasts, server_cpu, client_cpu = [], [], [], []
        for r in range(rounds + 1):
            cpu_server, cpu_client = cpu_ms(server.pid), cpu_ms(os.getpid())
            sent = time.perf_counter()
            await sender.request("bench", target="broadcast", round=str(r))
            async with asyncio.timeout(60):
                while len(arrivals.get(str(r), [])) < clients:  # noqa: ASYNC110 - polls the arrivals table
                    await asyncio.sleep(0.005)
            got = [(t - sent) * 1000 for t in arrivals[str(r)]]
            if r:  # round 0 warms up
                deliveries += got
                lasts.append(max(got))
                server_cpu.append(cpu_ms(server.pid) - cpu_server)
                client_cpu.append(cpu_ms(os.getpid()) - cpu_client)
            await asyncio.sleep(0.5)
        report("bridge_broadcast_delivery", deliveries, goal={"p99": 50.0}, clients=clients, rounds=rounds)
        report("bridge_broadcast_last_delivery", lasts, clients=clients, rounds=rounds)
        print(json.dumps({"metric": "bridge_broadcast_cpu_per_broadcast", "unit": "ms", "clients": clients,
                          "server_mean": round(sum(server_cpu) / rounds, 2),
                          "client_mean": round(sum(client_cpu) / rounds, 2),
                          "note": "CPU of the serve process (hub + bridge) and of the receiving clients per "
                                  "broadcast (mean over rounds, from schedstat); independent of machine load"}))
        print(json.dumps({"metric": "load_average", "value": os.getloadavg(), "cpus": os.cpu_count()}), flush=True)
        for receiver in receivers:
            assert receiver.transport is not None
            receiver.transport.close()
        await sender.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.rounds))


if __name__ == "__main__":
    main()
