"""Can the local model use the grid's tools? (--tool-prompt on with Qwen2.5-Coder-0.5B on CPU)

Run: .venv/bin/python benchmarks/grid_model_tools.py [--model-dir DIR] [--threads 2]

The system prompt carries the tool note (built-ins plus two node tools); each
request is answered once (temperature 0.2). Printed per request: whether the
reply held a tool block, whether it parses as NIT, the tools it calls, and
the time; then the rates: tool requests answered with a parseable script that
calls the right tool, and chat lines answered with any script (false calls).
Slow on a shared CPU (minutes): a figure for the report, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from server.llm.base import LlmRequest
from server.llm.prompt import build_messages
from server.nit import NitError, parse
from server.nit.syntax import Call
from server.tools.catalog import ToolSpec, builtin_specs
from server.tools.nit_step import NitScanner
from server.tools.prompt import with_tool_note

TOOLS = [*builtin_specs(reminders=True, tasks=True, memory=False),
         ToolSpec("mobile.location.get", "Where the user's phone is now", {"type": "object", "properties": {}},
                  "node"),
         ToolSpec("desktop.notify", "Show a notification on the PC",
                  {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}, "node")]
REQUESTS = [("Where is my phone right now?", "mobile.location.get"),
            ("在电脑上弹个通知：该喝水了", "desktop.notify"),
            ("Put 'buy milk' on my to-do list.", "add_task"),
            ("明天早上八点提醒我开会", "add_reminder")]
CHAT = ["Tell me a joke about cats.", "你今天过得怎么样？", "What is the capital of France?", "我有点累了"]


def called(script: str) -> list[str]:
    return [s.expr.tool for s in parse(script).statements if isinstance(s.expr, Call)]


async def main(model_dir: Path, threads: int) -> None:
    from server.llm.local import LocalTransformersProvider

    llm = LocalTransformersProvider(model_dir, threads=threads, temperature=0.2)
    right = false_calls = 0
    try:
        for text, expected in [*REQUESTS, *((c, "") for c in CHAT)]:
            request = with_tool_note(LlmRequest(build_messages([], text), f"bench-{hash(text)}", 120), TOOLS)
            started = time.perf_counter()
            reply = "".join([piece async for piece in llm.stream(request)])
            scanner = NitScanner()
            scanner.feed(reply)
            scanner.flush()
            tools: list[str] = []
            parsed = True
            for script in scanner.scripts:
                try:
                    tools += called(script)
                except NitError:
                    parsed = False
            if expected:
                right += parsed and expected in tools
            else:
                false_calls += bool(scanner.blocks)
            print(json.dumps({"text": text, "expected": expected, "blocks": len(scanner.blocks), "parses": parsed,
                              "calls": tools, "seconds": round(time.perf_counter() - started, 1)},
                             ensure_ascii=False), flush=True)
    finally:
        await llm.aclose()
    print(json.dumps({"bench": "grid_model_tools", "tool_requests_right": f"{right}/{len(REQUESTS)}",
                      "chat_with_false_calls": f"{false_calls}/{len(CHAT)}"}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path,
                        default=Path.home() / ".peromesh" / "models" / "qwen2.5-coder-0.5b-instruct-fp32")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.model_dir, args.threads))
