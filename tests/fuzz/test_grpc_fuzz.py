"""The gRPC fuzz campaign, short version: seeded bytes to every method of every service on real
servers (tts, memory, core), batch by batch; after each batch a fresh client's turn must run.

No answer may be UNKNOWN or INTERNAL, no unary call may stall, every error carries a message.
What a call is owed is in grpc_fuzzer.py; the long campaign is benchmarks/fuzz_grpc.py. A failure
prints its seed: PEROMESH_FUZZ_SEED=N replays it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import grpc
from meshkit import start_test_mesh

from server.rpc.channels import open_channel

from .grpc_fuzzer import (
    Method,
    Mutator,
    Tally,
    fresh_turn,
    fuzz_batch,
    fuzz_call,
    hosted_services,
    methods,
    schedule,
    services,
)

SEED = int(os.environ.get("PEROMESH_FUZZ_SEED", "20261201"))
TOKEN = "fuzz-token"
CALL_S = 8.0  # a unary answer is owed within this, even on a loaded 2-core machine
ROUNDS = 4  # calls per method per batch
BATCHES = 2


async def test_mutated_bytes_to_every_method_get_precise_answers(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--token", TOKEN, "--scripted-delay-ms", "1", "--asr-model", "none",
                                 "--memory-embedder", "minilm", only=("tts", "memory", "core"))
    tally = Tally()
    try:
        names = set(services())
        targets: list[tuple[str, list[Method]]] = []
        for address in mesh.addresses.values():
            targets.append((address, methods(await hosted_services(address, TOKEN, names))))
        covered = {m.service for _, ms in targets for m in ms}
        assert covered == names, f"services no server reported SERVING: {sorted(names - covered)}"
        corpus = [seed for _, ms in targets for m in ms for seed in m.seeds]
        mutator = Mutator(SEED, corpus)
        for _ in range(BATCHES):
            for address, ms in targets:
                await fuzz_batch(address, TOKEN, list(schedule(ms, ROUNDS, mutator.random)), mutator, tally, CALL_S)
            await fresh_turn(mesh.addresses["core"], TOKEN, tally, 60.0)
    finally:
        await mesh.stop()
    summary = tally.summary()
    assert tally.calls >= BATCHES * ROUNDS * 30, summary
    assert not tally.imprecise and not tally.stalls and tally.failed_turns == 0, f"seed {SEED}: {summary}"
    assert tally.fresh_turns == BATCHES
    assert tally.by_code["INVALID_ARGUMENT"] > tally.calls // 3, summary  # the mutations do reach the decoder


async def test_an_aborted_request_stream_still_sending_gets_its_status_not_internal(data_dir: Path) -> None:
    """grpc answers INTERNAL "Internal error from Core" when a status goes out while the client is
    still sending; the servers let the client finish first (see server/rpc/decoding.py)."""
    mesh = await start_test_mesh(data_dir, "--token", TOKEN, only=("tts",))
    try:
        method = next(m for m in methods({"peromesh.tts.v1.TtsService"}) if m.path.endswith("/Synthesize"))
        segment_first = Method(method.path, method.service, True, True, (method.seeds[2],))  # no config first
        tally = Tally()
        mutator = Mutator(SEED, [])
        mutator.payload = lambda _m: segment_first.seeds[0]  # type: ignore[method-assign]
        async with open_channel(mesh.addresses["tts"], TOKEN) as channel:
            for _ in range(40):
                await fuzz_call(channel, segment_first, mutator, tally, CALL_S)
    finally:
        await mesh.stop()
    assert tally.by_code == {grpc.StatusCode.INVALID_ARGUMENT.name: 40}, tally.summary()


def test_the_generator_is_seeded() -> None:
    ms = methods(set(services()))
    a, b = Mutator(7, []), Mutator(7, [])
    assert [a.payload(m) for m in ms] == [b.payload(m) for m in ms]
    assert list(schedule(ms, 2, random.Random(1))) == list(schedule(ms, 2, random.Random(1)))
