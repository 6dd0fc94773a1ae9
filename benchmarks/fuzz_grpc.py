"""The gRPC fuzz campaign, long version, against a real `peromesh serve` (tts, memory, core).

The same seeded generator as tests/fuzz/test_grpc_fuzz.py (tests/fuzz/grpc_fuzzer.py): random
bytes, mutated seed messages and other methods' messages to every method of every service, with
the mesh token. After every batch (`--batch` calls) a fresh client's turn must run to its
assistant_final and the serve process must still be alive (a crash ends the campaign).

Prints one JSON line: messages sent, calls, answers by status code, imprecise answers
(UNKNOWN/INTERNAL or no message), stalls, crashes, fresh turns, the load, the first problems.

Usage: .venv/bin/python benchmarks/fuzz_grpc.py [--messages 10000] [--batch 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))
import grpc  # noqa: E402
from _serve import TOKEN, serve  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from server.rpc.channels import open_channel  # noqa: E402
from tests.fuzz.grpc_fuzzer import (  # noqa: E402
    Method,
    Mutator,
    Tally,
    fresh_turn,
    fuzz_batch,
    hosted_services,
    methods,
    services,
)


async def alive(endpoints: dict[str, str]) -> bool:
    """Every server still answers health (a crashed serve process answers nothing)."""
    for address in endpoints.values():
        async with open_channel(address) as channel:
            try:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            except grpc.aio.AioRpcError as exc:
                print(f"{address}: {exc.code().name} {exc.details()}", file=sys.stderr)
                return False
    return True


async def campaign(endpoints: dict[str, str], messages: int, batch: int, seed: int,
                   call_s: float) -> dict[str, object]:
    names = set(services())
    targets: list[tuple[str, Method]] = []
    for address in endpoints.values():
        targets += [(address, m) for m in methods(await hosted_services(address, TOKEN, names))]
    mutator = Mutator(seed, [s for _, m in targets for s in m.seeds])
    tally, crashes, started = Tally(), 0, time.monotonic()
    while tally.messages < messages:
        picks = [mutator.random.choice(targets) for _ in range(batch)]
        for address in sorted({a for a, _ in picks}):
            await fuzz_batch(address, TOKEN, [m for a, m in picks if a == address], mutator, tally, call_s)
        if not await alive(endpoints):
            crashes += 1
            break
        await fresh_turn(endpoints["core"], TOKEN, tally, 60.0)
    out = tally.summary()
    out.update(crashes=crashes, seconds=round(time.monotonic() - started, 1), seed=seed,
               load_1min=os.getloadavg()[0], services=len(names), methods=len(targets))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="calls between fresh turns")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--call-s", type=float, default=10.0)
    args = parser.parse_args()
    flags = ("--llm", "scripted", "--scripted-delay-ms", "1", "--asr-model", "none", "--tts-engines", "espeak-ng")
    with serve(*flags, only="tts,memory,core") as listed:
        endpoints = {name: a for name, a in listed.items() if isinstance(a, str) and ":" in a}  # not the pid
        result = asyncio.run(campaign(endpoints, args.messages, args.batch, args.seed, args.call_s))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
