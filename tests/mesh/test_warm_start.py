"""Ready means warm: a real `peromesh serve` loads every model a turn needs before it says ready.

The embedders (MiniLM and the multilingual USE, the default `auto` setting) and espeak-ng are
loaded and exercised before `peromesh: ready`; the first turn after it loads nothing (every load
prints a `peromesh: loading …` line, so a lazy one would show up after `ready`), and its first
delta is close to the steady state's. Before this, the embedders loaded in the background after
`ready` and the first turn's first delta took 1.5–1.9 s against ~70 ms steady.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshkit import Conversation, start_test_mesh
from warm_kit import LOADING, TOKEN, ServedMesh, timed_turn

from peromesh.memory.v1 import memory_service_pb2 as memory_pb
from peromesh.memory.v1 import memory_service_pb2_grpc as memory_grpc
from server import warmup
from server.rpc.channels import open_channel

pytestmark = pytest.mark.slow
STEADY_TURNS = 3


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedMesh]:
    mesh = ServedMesh(tmp_path, "--llm", "scripted", "--scripted-delay-ms", "20", "--asr-model", "none",
                      "--tts-engines", "espeak-ng", "--memory-embedder", "auto")
    try:
        yield mesh
    finally:
        mesh.close()


async def test_ready_comes_after_every_load_and_the_first_turn_loads_nothing(served: ServedMesh) -> None:
    await asyncio.to_thread(served.wait_ready)
    before = served.before_ready()
    for model in ("all-MiniLM-L6-v2", "universal-sentence-encoder-multilingual-3"):
        assert f"peromesh: embedder {model} loaded" in "\n".join(before), before
    assert any(line.startswith("peromesh: voice espeak-ng warm") for line in before), before
    assert any(line.startswith("peromesh: chat model (scripted) warm") for line in before), before
    endpoints = served.endpoints()
    async with open_channel(endpoints["memory"]) as channel:  # listening means warm: already SERVING
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING

    async with open_channel(endpoints["core"], TOKEN) as channel:
        talk = Conversation(channel)
        try:
            talk.config(session_id="warm-start")
            await talk.until("session_started")
            first = await timed_turn(talk, "Hello! What do you remember about my trip to Paris?")
            assert not [line for line in served.after_ready() if line.startswith(LOADING)], served.after_ready()
            steady = [await timed_turn(talk, f"And what about question {i}?") for i in range(STEADY_TURNS)]
        finally:
            await talk.close()
    assert not [line for line in served.after_ready() if line.startswith(LOADING)], served.after_ready()
    steady_delta = statistics.median(t.first_delta_s for t in steady)
    # Generous (a loaded 2-core machine): a model loading in the first turn costs seconds.
    assert first.first_delta_s <= 3 * steady_delta + 0.75, (first, steady)


async def test_a_started_memory_server_stores_and_recalls_without_loading_anything(data_dir: Path) -> None:
    """In process, counted: every embedder load happens inside start, none in the first requests."""
    before = warmup.loads()
    mesh = await start_test_mesh(data_dir, "--memory-embedder", "auto", only=["memory"])
    try:
        started = warmup.loads()
        loaded = started - before
        assert loaded["embedder all-MiniLM-L6-v2"] == 1, loaded
        assert loaded["embedder universal-sentence-encoder-multilingual-3"] == 1, loaded
        async with open_channel(mesh.addresses["memory"], mesh.token) as channel:
            stub = memory_grpc.MemoryServiceStub(channel)
            await stub.AddMemory(memory_pb.AddMemoryRequest(text="My sister Anna lives in Lyon."))
            await stub.AddMemory(memory_pb.AddMemoryRequest(text="我女儿的生日是三月五号。"))
            for query in ("Where does my sister live?", "我女儿什么时候过生日？"):
                found = await stub.Recall(memory_pb.RecallRequest(text=query, top_k=3))
                assert found.memories, query
        assert warmup.loads() == started, warmup.loads() - started
    finally:
        await mesh.stop()
