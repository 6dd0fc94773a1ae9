"""The gateway fuzz campaign, short version: seeded bad frames over real WebSockets against a real
bridge + core (in-process hub), batch by batch; after each batch a fresh client's turn must run.

What a frame is owed, and how a stall is told from a slow answer, is in gateway_fuzzer.py. The
long campaign is benchmarks/fuzz.py. A failure prints its seed: PEROMESH_FUZZ_SEED=N replays it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from meshkit import start_test_mesh

from server.app.root import Mesh

from .gateway_fuzzer import (
    Case,
    GatewayFuzzer,
    Tally,
    fresh_turn,
    run_connection,
    run_first_frame,
    run_flood,
)

SEED = int(os.environ.get("PEROMESH_FUZZ_SEED", "20261201"))
TOKEN = "fuzz-token"
ANSWER_S = 8.0  # an answer (or a close) is owed within this, even on a loaded 2-core machine
TURN_S = 30.0


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--token", TOKEN, "--scripted-delay-ms", "2", "--asr-model", "none",
                                 only=("tts", "core", "bridge"))
    yield mesh
    await mesh.stop()


async def test_bad_frames_get_precise_answers_and_the_mesh_keeps_serving(mesh: Mesh) -> None:
    url = f"ws://{mesh.addresses['bridge']}/ws"
    fuzzer = GatewayFuzzer(SEED, TOKEN)
    tally = Tally()
    r = fuzzer.rng

    def one_of(*makers: Callable[[str], Case]) -> Callable[[str], Case]:
        return lambda device: r.choice(makers)(device)

    def conn(name: str, cases: int, make: Callable[[str], Case] | None = None) -> Awaitable[None]:
        return run_connection(url, TOKEN, fuzzer, name, cases, tally, ANSWER_S, make)

    async def first_frames() -> None:
        for i in range(30):
            await run_first_frame(url, fuzzer.first_frame(f"fz-first-{i}"), tally, ANSWER_S)

    async def edges() -> None:
        await conn("fz-soft", 2, lambda device: fuzzer.oversize(device, hard=False))
        await conn("fz-hard", 1, lambda device: fuzzer.oversize(device, hard=True))
        await conn("fz-utf8", 1, lambda _: fuzzer.bad_utf8())

    batches: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("binary", lambda: conn("fz-bin", 120, one_of(fuzzer.binary_mutated, fuzzer.binary_mutated,
                                                      fuzzer.binary_random))),
        ("json", lambda: conn("fz-json", 120, fuzzer.json_mutated)),
        ("refused", lambda: conn("fz-refused", 64, fuzzer.refused)),
        ("mixed-concurrent", lambda: asyncio.gather(conn("fz-mix-a", 80), conn("fz-mix-b", 80))),
        ("before-hello", first_frames),
        ("edges", edges),
        ("flood", lambda: run_flood(url, TOKEN, "fz-flood", 800, tally, ANSWER_S)),
    ]
    for name, batch in batches:
        await batch()
        await fresh_turn(url, TOKEN, f"fz-turn-{name}", tally, TURN_S)

    summary = json.dumps(tally.summary(), indent=1)
    print(f"seed {SEED}: {summary}")  # shown with -s, and on failure
    problems = tally.problems()
    assert not problems, f"seed {SEED}: {len(problems)} problems:\n" + "\n".join(problems[:25]) + f"\n{summary}"
    assert tally.turns_ok == len(batches), summary
    assert tally.frames > 1000 and tally.closes[1009] == 1 and tally.closes[1007] == 1 and tally.closes[1008] == 1
    assert sum(tally.closes[c] for c in (4400, 4401)) >= 20, summary  # most first frames are refused
    assert tally.closes[1011] == 0
