"""Latency through the bridge, measured at a WebSocket client against a real `peromesh serve`.

Prints, as JSON lines:
- bridge_first_delta_overhead: `chat` sent → first assistant_delta received, minus the scripted
  provider's own first-token delay, p50/p99 (goal ≤ 1.9 ms p50, ≤ 6.7 ms p99: half of a FastAPI +
  SSE dialog engine's overhead measured on this machine, 3.75 / 13.5 ms).
- bridge_interrupt: `interrupt` sent while audio is streaming → audio_cancel received, p50/p99
  (goal ≤ 20 ms p99).

Usage: .venv/bin/python benchmarks/bridge_latency.py [--turns 200] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent / "tests")]
from _serve import serve  # noqa: E402
from bridge.gateway_client import GatewayClient, action_is  # noqa: E402
from bridge_report import report  # noqa: E402

TOKEN = "bench-token"


async def first_delta(url: str, turns: int, delay_ms: float) -> None:
    client = await GatewayClient.open(url, "bench-delta", token=TOKEN, binary=True)
    overhead = []
    for i in range(turns + 20):
        started = time.perf_counter()
        await client.request("chat", text=f"question {i}")
        got = await client.recv_until(action_is("assistant_delta"))
        arrived = time.perf_counter()
        await client.request("interrupt", turn_id=got[-1].request.params["turn_id"])
        await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "interrupted")
        if i >= 20:  # warm-up excluded
            overhead.append((arrived - started) * 1000 - delay_ms)
    await client.close()
    report("bridge_first_delta_overhead", overhead, goal={"p50": 1.9, "p99": 6.7},
           baseline={"p50": 3.75, "p99": 13.5}, note=f"scripted provider delay {delay_ms} ms subtracted")


async def interrupt(url: str, turns: int) -> None:
    client = await GatewayClient.open(url, "bench-cut", token=TOKEN, binary=True)
    latency = []
    for i in range(turns + 5):
        await client.request("chat", text=f"speak {i}")
        got = await client.recv_until(lambda e: e.HasField("stream"))
        turn = got[-1].stream.turn_id
        sent = time.perf_counter()
        await client.request("interrupt", turn_id=turn)
        await client.recv_until(action_is("audio_cancel"))
        cancelled = time.perf_counter()
        await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "interrupted")
        if i >= 5:
            latency.append((cancelled - sent) * 1000)
    await client.close()
    report("bridge_interrupt", latency, goal={"p99": 20.0}, note="interrupt sent while audio streams → audio_cancel")


async def run(turns: int, delay_ms: float, audio_turns: int) -> None:
    flags = ("--llm", "scripted", "--scripted-delay-ms", str(delay_ms), "--token", TOKEN)
    with serve(*flags, only="tts,core,bridge") as endpoints:
        url = f"ws://{endpoints['bridge']}/ws"
        await first_delta(url, turns, delay_ms)
        await interrupt(url, audio_turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--audio-turns", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.delay_ms, args.audio_turns))


if __name__ == "__main__":
    main()
