"""Dialog latency: PeroMesh side by side with a bare grpc.aio server and a FastAPI + SSE engine.

Three engines run at once on this machine, each in its own process, with the same scripted
answer at the same per-token delay: a real `peromesh serve` (scripted LLM, espeak-ng), a bare
grpc.aio bidi server with no PeroMesh code (benchmarks/_grpc_floor.py: what Python gRPC itself
costs) and a FastAPI + Server-Sent Events dialog engine (benchmarks/_sse_engine.py: one HTTP
request per turn, httpx streaming on the client). Turns alternate between them (the order rotates
every round), so load from other processes falls on all three alike and the ratios of one run
hold even on a busy machine.

Prints, as JSON lines:
- first_delta_overhead_{peromesh,grpc_floor,fastapi_sse}: the wire overhead of the first
  assistant delta: client-observed input → first delta, minus the engine's own
  `t_first_delta_ms` (input taken → the provider's first token, reported in its metrics event),
  p50/p99 over N turns; beside it the client time minus the configured delay, the engine's own
  interval, and the engine process's CPU per turn (background work included).
- first_delta_overhead_ratios: PeroMesh / floor (goal ≤ 1.15) and FastAPI / PeroMesh (goal ≥ 2)
  of p50 and p99, with the load average before and after.
- interrupt_grpc: PeroMesh, interrupt sent → audio_cancel received, p50/p99 (same turns).
- first_audio_after_first_delta_espeak: first audio_chunk minus first assistant_delta, p50/p99.

Usage: .venv/bin/python benchmarks/dialog_latency.py [--turns 300] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import TOKEN, percentile, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel

HERE = Path(__file__).resolve().parent
WARMUP_TURNS = 20
GOALS = {"peromesh_over_floor_max": 1.15, "fastapi_over_peromesh_min": 2.0}


class Client:
    """One Converse stream, driven request by request."""

    def __init__(self, channel: object) -> None:
        self.requests: asyncio.Queue[pb.ConverseRequest] = asyncio.Queue()
        self.call = pb_grpc.DialogServiceStub(channel).Converse(self._iter())

    async def _iter(self) -> AsyncIterator[pb.ConverseRequest]:
        while True:
            yield await self.requests.get()

    def send(self, **kind: Any) -> None:
        self.requests.put_nowait(pb.ConverseRequest(**kind))

    async def until(self, kind: str, turn_id: str | None = None) -> pb.ConverseResponse:
        while True:
            event = await self.call.read()
            if event.WhichOneof("event") == kind and (turn_id is None or event.turn_id == turn_id):
                return event  # type: ignore[no-any-return]


@dataclass
class Sample:
    client_ms: float  # input sent → first delta read, as the client saw it
    server_ms: float  # the engine's own input → first token (its metrics' t_first_delta_ms)


@dataclass
class Engine:
    """One engine under test: its samples and the process it runs in."""

    name: str
    pid: int
    samples: list[Sample] = field(default_factory=list)
    cpu_s: float = 0.0

    def cpu_now(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)


class Turns(Protocol):
    async def turn(self, i: int) -> Sample: ...


class MeshTurns:
    """PeroMesh's Converse: user_text → first delta → interrupt → audio_cancel → metrics → INTERRUPTED."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.interrupt_ms: list[float] = []

    async def turn(self, i: int) -> Sample:
        client = self.client
        started = time.perf_counter()
        client.send(user_text=pb.UserText(text=f"question {i}"))
        first = await client.until("assistant_delta")
        got_first = time.perf_counter()
        client.send(interrupt=pb.Interrupt(turn_id=first.turn_id))
        await client.until("audio_cancel", first.turn_id)
        self.interrupt_ms.append((time.perf_counter() - got_first) * 1000)
        metrics = await client.until("metrics", first.turn_id)
        await client.until("state_update", first.turn_id)  # the final state: INTERRUPTED
        return Sample((got_first - started) * 1000, metrics.metrics.t_first_delta_ms)


class FloorTurns:
    """The bare grpc.aio server: user_text → state, delta (after the delay), metrics."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def turn(self, i: int) -> Sample:
        started = time.perf_counter()
        self.client.send(user_text=pb.UserText(text=f"question {i}"))
        await self.client.until("assistant_delta")
        got_first = time.perf_counter()
        metrics = await self.client.until("metrics")
        return Sample((got_first - started) * 1000, metrics.metrics.t_first_delta_ms)


class SseTurns:
    """The FastAPI + SSE engine: POST /turns streams events; the interrupt is a second request."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def turn(self, i: int) -> Sample:
        started = time.perf_counter()
        async with self.http.stream("POST", "/turns", json={"text": f"question {i}"}) as response:
            response.raise_for_status()
            events = _sse_events(response)
            async for kind, _data in events:
                if kind == "delta":
                    break
            got_first = time.perf_counter()
            (await self.http.post(f"/turns/{response.headers['x-turn-id']}/interrupt")).raise_for_status()
            server_ms = -1.0
            async for kind, data in events:
                if kind == "metrics":
                    server_ms = float(data["t_first_delta_ms"])
                elif kind == "state":
                    break
            await events.aclose()
        return Sample((got_first - started) * 1000, server_ms)


async def _sse_events(response: httpx.Response) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """(event, data) of a text/event-stream, one per blank-line-terminated block."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield kind, json.loads(data)
            kind, data = "message", ""
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def helper(script: str, delay_ms: float) -> Iterator[tuple[int, int]]:
    """Run benchmarks/<script> PORT DELAY_MS until it prints `ready`; yields (port, pid)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / script), str(port), str(delay_ms)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "ready" in proc.stdout.readline(), f"{script} did not start"
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


async def run(turns: int, delay_ms: float, audio_turns: int, gap_s: float) -> None:
    load_before = os.getloadavg()
    with serve("--llm", "scripted", "--scripted-delay-ms", str(delay_ms)) as endpoints, \
            helper("_grpc_floor.py", delay_ms) as (floor_port, floor_pid), \
            helper("_sse_engine.py", delay_ms) as (sse_port, sse_pid):
        async with open_channel(endpoints["core"], TOKEN) as mesh_channel, \
                open_channel(f"127.0.0.1:{floor_port}") as floor_channel, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{sse_port}", timeout=30) as http:
            mesh_client = Client(mesh_channel)
            mesh_client.send(config=pb.SessionConfig(session_id="bench-text", text_only=True))
            await mesh_client.until("session_started")
            floor_client = Client(floor_channel)
            mesh = MeshTurns(mesh_client)
            engines: list[tuple[Engine, Turns]] = [
                (Engine("peromesh", int(endpoints["pid"])), mesh),
                (Engine("grpc_floor", floor_pid), FloorTurns(floor_client)),
                (Engine("fastapi_sse", sse_pid), SseTurns(http)),
            ]
            await alternate(engines, turns, gap_s)
            mesh_client.call.cancel()
            floor_client.call.cancel()
            load_after = os.getloadavg()
            by_name = {engine.name: engine for engine, _ in engines}
            for engine, _ in engines:
                report_engine(engine, delay_ms, turns)
            report_ratios(by_name, load_before, load_after)
            report("interrupt_grpc", mesh.interrupt_ms[WARMUP_TURNS:], goal={"p99": 10.0})
            await measure_audio(mesh_channel, audio_turns)


async def alternate(engines: list[tuple[Engine, Turns]], turns: int, gap_s: float) -> None:
    """One turn of each engine per round, the order rotated every round; warm-up rounds not kept."""
    for i in range(WARMUP_TURNS + turns):
        if i == WARMUP_TURNS:
            for engine, _ in engines:
                engine.cpu_s = -engine.cpu_now()
        for engine, turns_of in engines[i % 3:] + engines[:i % 3]:
            sample = await turns_of.turn(i)
            if i >= WARMUP_TURNS:
                engine.samples.append(sample)
            if gap_s:
                await asyncio.sleep(gap_s)  # a pause between utterances, as in a conversation
    for engine, _ in engines:
        engine.cpu_s += engine.cpu_now()


def overheads(engine: Engine) -> list[float]:
    return [s.client_ms - s.server_ms for s in engine.samples]


def report_engine(engine: Engine, delay_ms: float, turns: int) -> None:
    minus_delay = [s.client_ms - delay_ms for s in engine.samples]
    own = [s.server_ms for s in engine.samples]
    report(f"first_delta_overhead_{engine.name}", overheads(engine), extra={
        "client_minus_delay": {"p50": _r(percentile(minus_delay, 50)), "p99": _r(percentile(minus_delay, 99))},
        "server_t_first_delta_ms": {"p50": _r(percentile(own, 50)), "p99": _r(percentile(own, 99))},
        "server_cpu_ms_per_turn": _r(engine.cpu_s * 1000 / max(1, turns)),
    })


def report_ratios(engines: dict[str, Engine], load_before: tuple[float, ...], load_after: tuple[float, ...]) -> None:
    stats = {name: {q: percentile(overheads(e), q) for q in (50, 99)} for name, e in engines.items()}
    mesh, floor, sse = stats["peromesh"], stats["grpc_floor"], stats["fastapi_sse"]
    line = {
        "metric": "first_delta_overhead_ratios",
        "peromesh_over_floor": {f"p{q}": _r(mesh[q] / max(1e-6, floor[q]), 2) for q in (50, 99)},
        "fastapi_over_peromesh": {f"p{q}": _r(sse[q] / max(1e-6, mesh[q]), 2) for q in (50, 99)},
        "goal": GOALS,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(line), flush=True)


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


def _r(value: float, digits: int = 3) -> float:
    return round(value, digits)


def report(name: str, values: list[float], goal: dict[str, float] | None = None,
           extra: dict[str, object] | None = None) -> None:
    line: dict[str, object] = {"metric": name, "n": len(values), "unit": "ms",
                               "p50": _r(percentile(values, 50)), "p99": _r(percentile(values, 99))}
    line.update(extra or {})
    if goal:
        line["goal"] = goal
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300, help="measured turns per engine (after 20 warm-up)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--audio-turns", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between a turn's end and the next input")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.delay_ms, args.audio_turns, args.gap_ms / 1000))


if __name__ == "__main__":
    main()
