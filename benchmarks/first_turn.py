"""The first turn after `peromesh: ready` against the steady state (issue 13: ready means warm).

Starts a fresh `peromesh serve` process (scripted LLM, real embedders, espeak-ng by default; its
own data dir), waits for `ready`, then times turn 1's first delta and first audio (user_text sent →
first assistant_delta / first audio_chunk) and turns 2..N in the same session, and prints, as one
JSON line: the time to ready, turn 1, the median of turns 2..N, the first/steady ratios (goal
≤ 1.5), any model load printed after `ready` (there should be none) and the machine's load.

Usage: .venv/bin/python benchmarks/first_turn.py [--turns 10] [--delay-ms 20] [--runs 1]
       [--tts-engines espeak-ng] [--asr-model none] [--llm scripted]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the served-process kit lives with the test that runs it short
from meshkit import Conversation  # noqa: E402
from warm_kit import LOADING, TOKEN, ServedMesh, TurnTiming, timed_turn  # noqa: E402

from server.rpc.channels import open_channel  # noqa: E402

# Questions the model answers (no reminder or task: the deterministic parser would answer those
# without the model, which is not the turn measured here); English and Mandarin recall paths.
QUESTIONS = [
    "Hello! What do you remember about my trip to Paris?",
    "我明天下午有什么安排？",
    "What should I cook tonight?",
    "你还记得我喜欢喝什么吗？",
]


async def one_run(args: argparse.Namespace) -> dict[str, object]:
    flags = ["--llm", args.llm, "--scripted-delay-ms", str(args.delay_ms), "--asr-model", args.asr_model,
             "--tts-engines", args.tts_engines, "--memory-embedder", args.memory_embedder, *args.extra]
    with tempfile.TemporaryDirectory() as tmp:
        launched = time.monotonic()
        served = ServedMesh(Path(tmp), *flags)
        try:
            await asyncio.to_thread(served.wait_ready, 600.0)
            to_ready = time.monotonic() - launched
            async with open_channel(served.endpoints()["core"], TOKEN) as channel:
                talk = Conversation(channel)
                try:
                    talk.config(session_id="first-turn")
                    await talk.until("session_started")
                    turns: list[TurnTiming] = []
                    for i in range(args.turns):
                        turns.append(await timed_turn(talk, QUESTIONS[i % len(QUESTIONS)], 120.0))
                        await asyncio.sleep(args.gap_ms / 1000)  # a pause between turns, as people make
                finally:
                    await talk.close()
            lazy = [line for line in served.after_ready() if line.startswith(LOADING)]
        finally:
            served.close()
    first, rest = turns[0], turns[1:]
    steady_delta = statistics.median(t.first_delta_s for t in rest)
    steady_audio = statistics.median(t.first_audio_s for t in rest)
    return {
        "ready_s": round(to_ready, 2),
        "first_delta_ms": round(first.first_delta_s * 1000, 1),
        "first_audio_ms": round(first.first_audio_s * 1000, 1),
        "steady_first_delta_ms_p50": round(steady_delta * 1000, 1),
        "steady_first_audio_ms_p50": round(steady_audio * 1000, 1),
        "ratio_first_delta": round(first.first_delta_s / steady_delta, 2),
        "ratio_first_audio": round(first.first_audio_s / steady_audio, 2),
        "turns_ms": [[round(t.first_delta_s * 1000, 1), round(t.first_audio_s * 1000, 1)] for t in turns],
        "loads_after_ready": lazy,
    }


async def run(args: argparse.Namespace) -> None:
    for run_index in range(args.runs):
        line = {"metric": "first_turn_after_ready", "run": run_index + 1, "llm": args.llm,
                "delay_ms": args.delay_ms, "tts_engines": args.tts_engines, "goal_ratio": 1.5,
                **await one_run(args), "load_average": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(line, ensure_ascii=False), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="turns in the session (the first, then steady)")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes, one after another")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the scripted model's delay per token")
    parser.add_argument("--gap-ms", type=float, default=300.0, help="pause after each turn")
    parser.add_argument("--llm", default="scripted", choices=["scripted", "local", "openai"])
    parser.add_argument("--tts-engines", default="espeak-ng")
    parser.add_argument("--asr-model", default="none")
    parser.add_argument("--memory-embedder", default="auto")
    parser.add_argument("extra", nargs="*", help="more `peromesh serve` flags (after --)")
    args = parser.parse_args()
    if args.turns < 2:
        parser.error("--turns must be at least 2 (the first turn and a steady one)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
