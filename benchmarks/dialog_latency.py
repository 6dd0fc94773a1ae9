"""Dialog latency over direct gRPC against a real `peromesh serve` (scripted LLM, espeak-ng).

Prints, as JSON lines:
- first_delta_overhead: client-observed user_text → first assistant_delta, minus the
  scripted provider's own first-token delay (the mesh's overhead), p50/p99 over N turns;
  baseline: a FastAPI + SSE dialog engine measured on this machine (p50 3.75 ms, p99 13.5 ms).
- interrupt: interrupt sent → audio_cancel received, p50/p99.
- first_audio: first audio_chunk minus first assistant_delta (espeak-ng), p50/p99.
- grpc_floor: the same client against a bare grpc.aio server with no PeroMesh code (one event at
  once, one after the same precisely timed delay): what Python gRPC itself costs on this machine.

Usage: .venv/bin/python benchmarks/dialog_latency.py [--turns 300] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import TOKEN, percentile, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel

SSE_BASELINE_MS = {"p50": 3.75, "p99": 13.5}


class Client:
    def __init__(self, channel: object) -> None:
        self.requests: asyncio.Queue[pb.ConverseRequest] = asyncio.Queue()
        self.call = pb_grpc.DialogServiceStub(channel).Converse(self._iter())  # type: ignore[arg-type]

    async def _iter(self):  # type: ignore[no-untyped-def]
        while True:
            yield await self.requests.get()

    def send(self, **kind: object) -> None:
        self.requests.put_nowait(pb.ConverseRequest(**kind))  # type: ignore[arg-type]

    async def until(self, kind: str, turn_id: str | None = None) -> pb.ConverseResponse:
        while True:
            event = await self.call.read()
            if event.WhichOneof("event") == kind and (turn_id is None or event.turn_id == turn_id):
                return event  # type: ignore[no-any-return]


async def run(turns: int, delay_ms: float, audio_turns: int, gap_s: float) -> None:
    with serve("--llm", "scripted", "--scripted-delay-ms", str(delay_ms)) as endpoints:
        async with open_channel(endpoints["core"], TOKEN) as channel:
            await measure_text(channel, turns, delay_ms, gap_s)
            await measure_audio(channel, audio_turns)
    await measure_floor(turns, delay_ms, gap_s)


async def measure_floor(turns: int, delay_ms: float, gap_s: float) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_grpc_floor.py"), str(port), str(delay_ms)],  # noqa: ASYNC220
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "ready" in proc.stdout.readline()
        async with open_channel(f"127.0.0.1:{port}") as channel:
            client = Client(channel)
            floor = []
            for i in range(turns + 20):
                started = time.perf_counter()
                client.send(user_text=pb.UserText(text=f"question {i}"))
                await client.until("assistant_delta")
                if i >= 20:
                    floor.append((time.perf_counter() - started) * 1000 - delay_ms)
                if gap_s:
                    await asyncio.sleep(gap_s)
            client.call.cancel()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    report("grpc_floor_bare_python_server", floor)


async def measure_text(channel: object, turns: int, delay_ms: float, gap_s: float) -> None:
    client = Client(channel)
    client.send(config=pb.SessionConfig(session_id="bench-text", text_only=True))
    await client.until("session_started")
    overhead, interrupt = [], []
    for i in range(turns + 20):
        started = time.perf_counter()
        client.send(user_text=pb.UserText(text=f"question {i}"))
        first = await client.until("assistant_delta")
        got_first = time.perf_counter()
        client.send(interrupt=pb.Interrupt(turn_id=first.turn_id))
        await client.until("audio_cancel", first.turn_id)
        cancelled = time.perf_counter()
        await client.until("state_update", first.turn_id)  # final state: INTERRUPTED
        if gap_s:
            await asyncio.sleep(gap_s)  # a pause between utterances, as in a conversation
        if i >= 20:  # warm-up turns excluded
            overhead.append((got_first - started) * 1000 - delay_ms)
            interrupt.append((cancelled - got_first) * 1000)
    client.call.cancel()
    report("first_delta_overhead_grpc", overhead, baseline=SSE_BASELINE_MS, goal={"p50": 0.75, "p99": 2.7})
    report("interrupt_grpc", interrupt, goal={"p99": 10.0})


async def measure_audio(channel: object, turns: int) -> None:
    client = Client(channel)
    client.send(config=pb.SessionConfig(session_id="bench-audio"))
    await client.until("session_started")
    gaps = []
    for i in range(turns):
        client.send(user_text=pb.UserText(text=f"speak {i}"))
        first = await client.until("assistant_delta")
        t_delta = time.perf_counter()
        await client.until("audio_chunk", first.turn_id)
        gaps.append((time.perf_counter() - t_delta) * 1000)
        client.send(interrupt=pb.Interrupt())
        while (await client.until("state_update", first.turn_id)).state_update.state != pb.STATE_INTERRUPTED:
            pass
    client.call.cancel()
    report("first_audio_after_first_delta_espeak", gaps, goal={"p50": 150.0})


def report(
    name: str, values: list[float], baseline: dict[str, float] | None = None, goal: dict[str, float] | None = None
) -> None:
    line: dict[str, object] = {
        "metric": name,
        "n": len(values),
        "unit": "ms",
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
    }
    if baseline:
        line["baseline"] = baseline
        line["ratio_vs_baseline"] = {k: round(baseline[k] / max(1e-6, float(line[k])), 1) for k in baseline}  # type: ignore[arg-type]
    if goal:
        line["goal"] = goal
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--audio-turns", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between a turn's end and the next input")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.delay_ms, args.audio_turns, args.gap_ms / 1000))


if __name__ == "__main__":
    main()
