"""Latency through the bridge, measured at a WebSocket client against a real `peromesh serve`.

Prints, as JSON lines:
- bridge_first_delta_overhead: `chat` sent → first assistant_delta received, minus the scripted
  provider's own first-token delay, p50/p99 (goal ≤ 1.9 ms p50, ≤ 6.7 ms p99: half of a FastAPI +
  SSE dialog engine's overhead measured on this machine, 3.75 / 13.5 ms); the same turn directly
  over gRPC, alternating with it (same load), and the difference per pair: what the bridge adds.
- bridge_interrupt: `interrupt` sent while audio is streaming → audio_cancel received, p50/p99
  (goal ≤ 20 ms p99).

Usage: .venv/bin/python benchmarks/bridge_latency.py [--turns 200] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from _serve import serve  # noqa: E402
from bridge_report import report  # noqa: E402

from peromesh.dialog.v1 import dialog_service_pb2 as dpb  # noqa: E402
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc  # noqa: E402
from server.rpc.channels import open_channel  # noqa: E402
from tests.bridge.gateway_client import GatewayClient, action_is  # noqa: E402

TOKEN = "bench-token"


class DirectConverse:
    """The same turn over DialogService.Converse directly (no bridge), for the comparison."""

    def __init__(self, core: str) -> None:
        self.channel = open_channel(core, TOKEN)
        self.requests: asyncio.Queue[dpb.ConverseRequest] = asyncio.Queue()
        self.call = dpb_grpc.DialogServiceStub(self.channel).Converse(
            self._iter(), metadata=(("authorization", f"Bearer {TOKEN}"),))

    async def _iter(self) -> AsyncIterator[dpb.ConverseRequest]:
        while True:
            yield await self.requests.get()

    async def until(self, kind: str, state: int = 0) -> dpb.ConverseResponse:
        while True:
            event = await self.call.read()
            if event.WhichOneof("event") == kind and (not state or event.state_update.state == state):
                return event  # type: ignore[no-any-return]

    async def turn(self, text: str) -> float:
        started = time.perf_counter()
        self.requests.put_nowait(dpb.ConverseRequest(user_text=dpb.UserText(text=text)))
        first = await self.until("assistant_delta")
        arrived = time.perf_counter()
        self.requests.put_nowait(dpb.ConverseRequest(interrupt=dpb.Interrupt(turn_id=first.turn_id)))
        await self.until("state_update", dpb.STATE_INTERRUPTED)
        return (arrived - started) * 1000


async def bridge_turn(client: GatewayClient, text: str) -> float:
    started = time.perf_counter()
    await client.request("chat", text=text)
    got = await client.recv_until(action_is("assistant_delta"))
    arrived = time.perf_counter()
    await client.request("interrupt", turn_id=got[-1].request.params["turn_id"])
    await client.recv_until(lambda e: action_is("state_update")(e) and e.request.params["state"] == "interrupted")
    return (arrived - started) * 1000


async def first_delta(url: str, core: str, turns: int, delay_ms: float) -> None:
    """Alternates the same turn through the bridge and directly over gRPC, so both see the same load."""
    client = await GatewayClient.open(url, "bench-delta", token=TOKEN, binary=True, protocol_version=1)
    direct = DirectConverse(core)
    direct.requests.put_nowait(dpb.ConverseRequest(config=dpb.SessionConfig(session_id="bench-direct")))
    await direct.until("session_started")
    via_bridge, via_grpc = [], []
    for i in range(turns + 20):
        b = await bridge_turn(client, f"question {i}") - delay_ms
        g = await direct.turn(f"question {i}") - delay_ms
        if i >= 20:  # warm-up excluded
            via_bridge.append(b)
            via_grpc.append(g)
    await client.close()
    direct.call.cancel()
    await direct.channel.close()
    note = f"scripted provider delay {delay_ms} ms subtracted"
    report("bridge_first_delta_overhead", via_bridge, goal={"p50": 1.9, "p99": 6.7},
           baseline={"p50": 3.75, "p99": 13.5}, note=note)
    report("grpc_first_delta_overhead_same_run", via_grpc, note=note + "; DialogService directly, no bridge")
    added = [b - g for b, g in zip(via_bridge, via_grpc, strict=True)]
    report("bridge_added_first_delta", added, note="per pair of consecutive turns: via bridge minus direct gRPC")


async def interrupt(url: str, turns: int) -> None:
    client = await GatewayClient.open(url, "bench-cut", token=TOKEN, binary=True, protocol_version=1)
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
        await first_delta(url, endpoints["core"], turns, delay_ms)
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
