"""What the tool port adds to a real turn: user_text → first assistant_delta, with and without it.

Run: .venv/bin/python benchmarks/grid_turn_overhead.py [--turns 200] [--nodes 50]

An in-process core (scripted LLM with no delay, text only, --tool-prompt on)
with `--nodes` nodes attached to its hub (3 capabilities each). Turns of
ordinary chat alternate between the tool port wired (intent layer, a tool
list rebuilt because the grid changed before every turn — the worst case —,
the prompt note, the NIT scanner over the stream) and `deps.tools = None`;
the client measures user_text sent → first assistant_delta received over
gRPC. Seed 004's target: the grid adds ≤ 50 ms to a turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grid_nodes import capabilities

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import start_mesh
from server.cli import parse_serve
from server.rpc.channels import open_channel

KINDS = ["desktop", "mobile", "web", "qq", "electron"]
CHAT = ["你好", "今天天气怎么样", "Can you tell me a story?", "我妈妈总是提醒我多喝水", "what did you remind me about?"]


async def main(turns: int, nodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse_serve([
            "--data-dir", tmp, "--only", "core", "--core-port", "0", "--llm", "scripted",
            "--scripted-delay-ms", "0", "--scripted-text", "好的，我知道了。", "--tool-prompt", "on",
            "--asr-model", "none"])
        mesh = await start_mesh(settings, gateway_token="bench")
        try:
            assert mesh.core is not None
            hub, grid, deps, port = mesh.core.hub, mesh.core.grid, mesh.core.deps, mesh.core.tools
            for i in range(nodes):
                link = hub.join(gw.Envelope(id="h", source_id=f"node-{i}", target_id="master",
                                            hello=gw.Hello(token="bench", platform=KINDS[i % len(KINDS)])))
                hub.route(link, gw.Envelope(id="r", source_id=f"node-{i}", target_id="master",
                                            register=gw.CapabilityRegister(capabilities=capabilities(i))))
            print(f"{nodes} nodes attached; {len(port.tools())} tools in the list")
            async with open_channel(mesh.addresses["core"], "bench") as channel:
                samples = await measure(channel, turns, deps, deps.tools, grid)
        finally:
            await mesh.stop()
    out = {}
    for mode, values in samples.items():
        ms = sorted(values)
        q = statistics.quantiles(ms, n=100, method="inclusive")
        out[mode] = {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2)}
        print(f"  first delta, {mode:<9} p50 {q[49]:6.2f} ms   p99 {q[98]:6.2f} ms   ({len(ms)} turns)")
    added = out["with"]["p50_ms"] - out["without"]["p50_ms"]
    print(f"  the tool port adds {added:.2f} ms at p50 (target ≤ 50 ms)")
    print(json.dumps({"bench": "grid_turn_overhead", "nodes": nodes, **out, "added_p50_ms": round(added, 2)}))


async def measure(channel: object, turns: int, deps: object, port: object, grid: object) -> dict[str, list[float]]:
    requests: asyncio.Queue[pb.ConverseRequest] = asyncio.Queue()

    async def feed() -> AsyncIterator[pb.ConverseRequest]:
        while True:
            yield await requests.get()

    call = pb_grpc.DialogServiceStub(channel).Converse(feed())  # type: ignore[arg-type]
    requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(session_id="bench", text_only=True,
                                                                   device_id="node-1")))
    samples: dict[str, list[float]] = {"with": [], "without": []}
    for i in range(turns + 10):
        mode = "with" if i % 2 else "without"
        deps.tools = port if mode == "with" else None  # type: ignore[attr-defined]  # the DialogToolPort
        grid.revision += 1  # type: ignore[attr-defined]  # a node changed: the list is rebuilt
        started = time.perf_counter()
        requests.put_nowait(pb.ConverseRequest(user_text=pb.UserText(text=CHAT[i % len(CHAT)])))
        first = None
        while True:
            event = await call.read()
            kind = event.WhichOneof("event")
            if kind == "assistant_delta" and first is None:
                first = (time.perf_counter() - started) * 1000
            if kind == "state_update" and event.state_update.state == pb.STATE_IDLE:
                break
        if i >= 10 and first is not None:  # the first turns warm caches
            samples[mode].append(first)
    call.cancel()
    return samples


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=50)
    parsed = parser.parse_args()
    asyncio.run(main(parsed.turns, parsed.nodes))
