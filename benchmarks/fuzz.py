"""The gateway fuzz campaign, long version, against a real `peromesh serve` (tts, core, bridge).

The same seeded cases as tests/fuzz/test_gateway_fuzz.py (tests/fuzz/gateway_fuzzer.py):
mutated binary and JSON envelopes, random bytes, what the protocol refuses, first frames before
hello, oversize frames, bad UTF-8 and floods, from `--workers` connections at once. After every
batch (`--batch` frames) a fresh client's turn must run to its assistant_final, and the serve
process must still be alive (a crash ends the campaign).

Prints one JSON line: frames sent, crashes (the process died, or a connection closed with 1011:
a bridge fault), stalled connections, closes by code, imprecise answers (UNKNOWN/INTERNAL or no
message), errors the bridge owed and did not send, fresh turns, the load, and the first problems.

Usage: .venv/bin/python benchmarks/fuzz.py [--frames 100000] [--workers 8] [--seed 1]
       [--batch 2000] [--hub grpc]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from _serve import serve  # noqa: E402

from tests.fuzz.gateway_fuzzer import (  # noqa: E402
    GatewayFuzzer,
    Tally,
    fresh_turn,
    run_connection,
    run_first_frame,
    run_flood,
)

TOKEN = "fuzz-bench-token"
ANSWER_S = 10.0
CASES_PER_CONNECTION = 150  # 2 messages per case (the case and its probe): inside the rate limit's burst


def serve_process() -> psutil.Process:
    [child] = [p for p in psutil.Process().children(recursive=True) if "peromesh" in " ".join(p.cmdline())]
    return child


async def worker(url: str, fuzzer: GatewayFuzzer, name: str, frames: int, tally: Tally) -> None:
    """`frames` frames from one worker: mostly post-hello cases, sometimes the connection edges."""
    sent, n = 0, 0
    r = fuzzer.rng
    while sent < frames:
        n += 1
        device = f"fz-{name}-{n}"
        before = tally.frames
        roll = r.random()
        if roll < 0.20:
            await run_first_frame(url, fuzzer.first_frame(device), tally, ANSWER_S)
        elif roll < 0.23:
            await run_connection(url, TOKEN, fuzzer, device, 1, tally, ANSWER_S,
                                 lambda d: fuzzer.oversize(d, hard=r.random() < 0.5))
        elif roll < 0.25:
            await run_connection(url, TOKEN, fuzzer, device, 1, tally, ANSWER_S, lambda _: fuzzer.bad_utf8())
        elif roll < 0.26:
            await run_flood(url, TOKEN, device, 800, tally, ANSWER_S)
        else:
            await run_connection(url, TOKEN, fuzzer, device, min(CASES_PER_CONNECTION, frames - sent),
                                 tally, ANSWER_S)
        sent += tally.frames - before


async def campaign(url: str, frames: int, workers: int, batch: int, seed: int,
                   alive: psutil.Process) -> dict[str, object]:
    tally = Tally()
    crashed = False
    started = time.perf_counter()
    batches = 0
    while tally.frames < frames and not crashed:
        batches += 1
        share = max(1, min(batch, frames - tally.frames) // workers)
        await asyncio.gather(*(worker(url, GatewayFuzzer(seed * 1_000_003 + batches * 101 + w, TOKEN),
                                      f"{batches}-{w}", share, tally) for w in range(workers)))
        crashed = not alive.is_running() or alive.status() == psutil.STATUS_ZOMBIE
        if not crashed:
            await fresh_turn(url, TOKEN, f"fz-turn-{batches}", tally, 60.0)
        print(f"batch {batches}: {tally.frames} frames, {len(tally.problems())} problems", file=sys.stderr)
    elapsed = time.perf_counter() - started
    summary = tally.summary()
    problems = tally.problems()
    return {"bench": "gateway_fuzz", "seed": seed, "workers": workers, "batches": batches,
            **{k: summary[k] for k in ("frames_sent", "stalled_connections", "imprecise_answers", "missing_errors",
                                       "closes_by_code", "answers_by_code", "fresh_turns_ok")},
            "crashes": int(crashed) + summary["bridge_faults_1011"],  # type: ignore[operator]
            "process_died": crashed, "fresh_turns_failed": batches - tally.turns_ok,
            "other_faults": summary["faults"], "frames_per_s": round(tally.frames / elapsed, 1),
            "elapsed_s": round(elapsed, 1), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "first_problems": problems[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2000, help="frames between fresh-turn checks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hub", choices=["auto", "grpc"], default="auto", help="the bridge's hub attachment")
    args = parser.parse_args()
    flags = ("--llm", "scripted", "--scripted-delay-ms", "2", "--asr-model", "none", "--token", TOKEN,
             "--bridge-hub", args.hub)
    with serve(*flags, only="tts,core,bridge") as endpoints:
        url = f"ws://{endpoints['bridge']}/ws"
        result = asyncio.run(campaign(url, args.frames, args.workers, args.batch, args.seed, serve_process()))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
