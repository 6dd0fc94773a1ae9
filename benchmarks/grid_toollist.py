"""What the tool grid adds to a turn (seed 004: ≤ 50 ms): tool-list generation and the intent layer.

Run: .venv/bin/python benchmarks/grid_toollist.py [--nodes 50]

A hub with `--nodes` attached nodes (3 capabilities each, across 5 node
kinds) and the real reminder and task services behind a GridToolPort.
Printed, per turn:
- tool list, cold: rebuilt because a node joined/left since the last turn
  (the worst case: every turn after a change);
- tool list, warm: nothing changed (cached by grid revision);
- tool list from scratch: no per-node entry cached (the first turn);
- the intent layer on ordinary chat lines (matching, the time parser where a
  reminder cue appears, tool-name lookups): what every model-bound turn pays;
- that plus a cold tool list and the prompt note (--tool-prompt on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grid_nodes import capabilities

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.dialog.tool_port import TurnRequest
from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub
from server.llm.base import ChatMessage, LlmRequest
from server.reminders.service import ReminderService
from server.storage.db import sqlite_url
from server.tasks.service import TaskService
from server.tools.catalog import ToolCatalog
from server.tools.port import GridToolPort
from server.tools.prompt import tool_note, with_tool_note

TOKEN = "bench-token"
KINDS = ["desktop", "mobile", "web", "qq", "electron"]
CHAT = ["你好", "今天天气怎么样", "我今天有很多任务要做", "你还记得提醒我什么吗", "明天早上八点我要开会，好紧张",
        "我妈妈总是提醒我多喝水", "what did you remind me about?", "Can you tell me a story?",
        "I set a reminder yesterday but it did not ring", "Tell me about the weather in Tokyo at 5pm",
        "run the dishwasher", "how do I add a task?"]


FIGURES: dict[str, dict[str, float]] = {}


def stats(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    print(f"  {label:<44} p50 {q[49]:7.3f} ms   p99 {q[98]:7.3f} ms   max {ms[-1]:7.3f} ms")
    FIGURES[label] = {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3), "max_ms": round(ms[-1], 3)}


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


async def main(n: int) -> None:
    hub = Hub(TOKEN)
    grid = CapabilityGrid(hub)
    links = []
    for i in range(n):
        link = hub.join(gw.Envelope(id="h", source_id=f"node-{i}", target_id="master",
                                    hello=gw.Hello(token=TOKEN, platform=KINDS[i % len(KINDS)])))
        hub.route(link, gw.Envelope(id="r", source_id=f"node-{i}", target_id="master",
                                    register=gw.CapabilityRegister(capabilities=capabilities(i))))
        links.append(link)
    with tempfile.TemporaryDirectory() as tmp:
        reminders, tasks = ReminderService(), TaskService()
        await reminders.open(sqlite_url(Path(tmp), "reminders"), timezone="Asia/Shanghai")
        await tasks.open(sqlite_url(Path(tmp), "tasks"))
        try:
            port = GridToolPort(reminders=reminders, tasks=tasks, grid=grid)
            request = LlmRequest([ChatMessage("system", "You are Pero."), ChatMessage("user", "hi")])
            tools = port.tools()
            print(f"{n} nodes online, {sum(len(x.info.capabilities) for x in links)} capabilities → "
                  f"{len(tools)} tools for the model ({len(port.catalog.functions_json())} bytes as JSON)")

            def cold() -> None:
                grid.revision += 1  # as after any join/update/leave
                port.tools()

            stats("tool list, cold (after a node change)", timed(cold, 300))
            stats("tool list, warm (no change)", timed(port.tools, 3000))

            def scratch() -> None:
                ToolCatalog(port.catalog.builtins, grid).tools()  # nothing cached: every node read again

            stats("tool list from scratch (first turn)", timed(scratch, 30))
            for text in CHAT[:2]:  # warm the parser's caches (dateparser loads its data once)
                await port.intent(TurnRequest("s", "node-1", text))
            samples = []
            for _ in range(20):
                for text in CHAT:
                    grid.revision += 1
                    t = time.perf_counter()
                    assert await port.intent(TurnRequest("s", "node-1", text)) is None, text
                    samples.append(time.perf_counter() - t)
            stats("intent layer on a chat turn", samples)
            samples = []
            for _ in range(20):
                for text in CHAT:
                    grid.revision += 1
                    t = time.perf_counter()
                    assert await port.intent(TurnRequest("s", "node-1", text)) is None, text
                    with_tool_note(request, port.tools())
                    samples.append(time.perf_counter() - t)
            stats("intent + cold tool list + prompt note", samples)
            print(f"  (the note for {len(tools)} tools is {len(tool_note(tools))} characters)")
        finally:
            await reminders.stop()
            await tasks.stop()
    for link in links:
        hub.leave(link, grpc.StatusCode.OK, "bench over")
    grid.close()
    print("target: ≤ 50 ms added per turn")
    print(json.dumps({"bench": "grid_toollist", "nodes": n, **FIGURES}, ensure_ascii=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    asyncio.run(main(parser.parse_args().nodes))
