"""The first turn after `peromesh: ready` against the steady state (issue 13: ready means warm).

Starts a fresh `peromesh serve` process (scripted LLM, real embedders, espeak-ng by default; its
own data dir), waits for `ready`, then times turn 1's first delta and first audio (user_text sent →
first assistant_delta / first audio_chunk) and turns 2..N in the same session, and prints, as one
JSON line: the time to ready, turn 1, turn N, the median of turns 2..N, the first/steady ratios
(goal ≤ 1.5), any model load printed after `ready` (there should be none) and the machine's load.

With `--languages en,zh` each language gets its own fresh processes (turn 1 after ready must be
that language's), and after its runs a `first_turn_summary` line gives the p50 over runs of turn 1
and of turn N. With the real local model (`--llm local`, `--model qwen`) that line holds issue 13's
goal: first delta ≤ 0.6 s and first audio ≤ 1.0 s p50, English and Mandarin, on turn 1 and turn 10.

Usage: .venv/bin/python benchmarks/first_turn.py [--turns 10] [--delay-ms 20] [--runs 1]
       [--tts-engines espeak-ng] [--asr-model none] [--llm scripted] [--model qwen]
       [--languages mixed|en|zh|en,zh]
The Qwen goal, on a quiet machine:
       .venv/bin/python benchmarks/first_turn.py --llm local --model qwen --tts-engines auto \
           --languages en,zh --turns 10 --runs 5
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

sys.path.insert(0, str(REPO / "benchmarks"))
from _questions import QUESTIONS  # noqa: E402
from _serve import local_model_dir  # noqa: E402

GOAL_MS = {"first_delta_ms": 600.0, "first_audio_ms": 1000.0}  # issue 13, the real local model, p50


async def one_run(args: argparse.Namespace, language: str) -> dict[str, object]:
    flags = ["--llm", args.llm, "--model", args.model, "--scripted-delay-ms", str(args.delay_ms),
             "--asr-model", args.asr_model, "--tts-engines", args.tts_engines,
             "--memory-embedder", args.memory_embedder, *args.extra]
    if args.llm == "local":  # the converted folder: a fresh data dir would convert the GGUF on every start
        flags += ["--model-dir", args.model_dir or await asyncio.to_thread(local_model_dir, args.model)]
    questions = QUESTIONS[language]
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
                        turns.append(await timed_turn(talk, questions[i % len(questions)], 120.0))
                        await asyncio.sleep(args.gap_ms / 1000)  # a pause between turns, as people make
                finally:
                    await talk.close()
            lazy = [line for line in served.after_ready() if line.startswith(LOADING)]
        finally:
            served.close()
    first, rest, last = turns[0], turns[1:], turns[-1]
    steady_delta = statistics.median(t.first_delta_s for t in rest)
    steady_audio = statistics.median(t.first_audio_s for t in rest)
    return {
        "ready_s": round(to_ready, 2),
        "first_delta_ms": round(first.first_delta_s * 1000, 1),
        "first_audio_ms": round(first.first_audio_s * 1000, 1),
        "turn_n_first_delta_ms": round(last.first_delta_s * 1000, 1),
        "turn_n_first_audio_ms": round(last.first_audio_s * 1000, 1),
        "steady_first_delta_ms_p50": round(steady_delta * 1000, 1),
        "steady_first_audio_ms_p50": round(steady_audio * 1000, 1),
        "ratio_first_delta": round(first.first_delta_s / steady_delta, 2),
        "ratio_first_audio": round(first.first_audio_s / steady_audio, 2),
        "turns_ms": [[round(t.first_delta_s * 1000, 1), round(t.first_audio_s * 1000, 1)] for t in turns],
        "loads_after_ready": lazy,
    }


async def run(args: argparse.Namespace) -> None:
    for language in args.languages:
        lines = []
        for run_index in range(args.runs):
            line = {"metric": "first_turn_after_ready", "run": run_index + 1, "language": language,
                    "llm": args.llm, "model": args.model if args.llm == "local" else "",
                    "delay_ms": args.delay_ms, "tts_engines": args.tts_engines, "goal_ratio": 1.5,
                    **await one_run(args, language), "load_average": [round(x, 2) for x in os.getloadavg()]}
            lines.append(line)
            print(json.dumps(line, ensure_ascii=False), flush=True)
        print(json.dumps(summary(args, language, lines), ensure_ascii=False), flush=True)


def summary(args: argparse.Namespace, language: str, lines: list[dict[str, object]]) -> dict[str, object]:
    """p50 over the runs of turn 1 (the first after ready) and of turn N, against the goal for Qwen."""
    out: dict[str, object] = {"metric": "first_turn_summary", "language": language, "llm": args.llm,
                              "model": args.model if args.llm == "local" else "", "runs": len(lines),
                              "turn_n": args.turns}
    for turn, prefix in (("turn_1", ""), ("turn_n", "turn_n_")):
        for key in GOAL_MS:
            values = [float(line[prefix + key]) for line in lines]  # type: ignore[arg-type]
            out[f"{turn}_{key}_p50"] = round(statistics.median(values), 1)
    if args.llm == "local":
        out["goal_ms"] = GOAL_MS
        out["meets_goal"] = all(float(out[f"{turn}_{key}_p50"]) <= goal  # type: ignore[arg-type]
                                for turn in ("turn_1", "turn_n") for key, goal in GOAL_MS.items())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="turns in the session (the first, then steady)")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes, one after another")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the scripted model's delay per token")
    parser.add_argument("--gap-ms", type=float, default=300.0, help="pause after each turn")
    parser.add_argument("--llm", default="scripted", choices=["scripted", "local", "openai"])
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"], help="the local model (--llm local)")
    parser.add_argument("--model-dir", default=None,
                        help="a transformers folder instead of --model (default: --model prepared under ~/.peromesh)")
    parser.add_argument("--languages", default="mixed", type=lambda text: text.split(","),
                        help="comma-separated: en, zh or mixed (alternating); each gets its own runs")
    parser.add_argument("--tts-engines", default="espeak-ng")
    parser.add_argument("--asr-model", default="none")
    parser.add_argument("--memory-embedder", default="auto")
    parser.add_argument("extra", nargs="*", help="more `peromesh serve` flags (after --)")
    args = parser.parse_args()
    if args.turns < 2:
        parser.error("--turns must be at least 2 (the first turn and a steady one)")
    if unknown := [language for language in args.languages if language not in QUESTIONS]:
        parser.error(f"--languages: unknown {unknown} (choose from {sorted(QUESTIONS)})")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
