"""MemoryService over a real gRPC channel: every RPC, precise error statuses, the client, `serve --only memory`."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from peromesh.memory.v1 import memory_service_pb2 as pb
from peromesh.memory.v1 import memory_service_pb2_grpc as pb_grpc
from server.memory.client import MemoryClient
from server.memory.embedder import Embedder
from server.memory.server import MemoryServer, start_memory_server
from server.rpc.channels import open_channel
from tests.memory.conftest import make_config
from tests.meshkit import start_test_mesh

TOKEN = "memory-test-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
async def server(data_dir: Path, embedders: dict[str, Embedder]) -> AsyncIterator[MemoryServer]:
    srv = await start_memory_server(make_config(data_dir, f"sqlite:///{data_dir / 'memory.db'}"),
                                    token=TOKEN, embedders=embedders)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def stub(server: MemoryServer) -> AsyncIterator[pb_grpc.MemoryServiceStub]:
    channel = open_channel(server.address)
    try:
        yield pb_grpc.MemoryServiceStub(channel)
    finally:
        await channel.close()


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code()


async def test_every_rpc_over_the_wire(stub: pb_grpc.MemoryServiceStub) -> None:
    added = await stub.AddMemory(pb.AddMemoryRequest(text="My favorite movie is Spirited Away.", tags=["film"],
                                                     session_id="s1", importance=0.7), metadata=AUTH)
    m = added.memory
    assert m.id > 0 and m.tags == ["film"] and math.isclose(m.importance, 0.7, rel_tol=1e-6)
    assert m.source == "user" and m.created_at.seconds > 0
    turn = await stub.IngestTurn(pb.IngestTurnRequest(session_id="s1", turn_id="t1",
                                                      user_text="我最喜欢的电影是《大话西游》。",
                                                      assistant_text="那部电影很经典！"), metadata=AUTH)
    assert turn.memory.prev_id == m.id and not turn.duplicate and turn.memory.turn_id == "t1"
    again = await stub.IngestTurn(pb.IngestTurnRequest(session_id="s1", turn_id="t1", user_text="我最喜欢的电影"),
                                  metadata=AUTH)
    assert again.duplicate and again.memory.id == turn.memory.id

    recall = await stub.Recall(pb.RecallRequest(text="which film do I love most?", top_k=2,
                                                recency_half_life=Duration(seconds=86400)), metadata=AUTH)
    best = recall.memories[0]
    assert best.memory.id == m.id and best.next.id == turn.memory.id and best.next.text.startswith("我最喜欢")
    assert best.scores.final > 0 and best.scores.semantic > 0.3 and recall.timings.total_ms > 0
    zh = await stub.Recall(pb.RecallRequest(text="我最爱看哪部片子？", top_k=1, spread_steps=0), metadata=AUTH)
    assert zh.memories[0].memory.id == turn.memory.id and zh.memories[0].previous.id == m.id

    rel = await stub.Relate(pb.RelateRequest(a_id=turn.memory.id, b_id=m.id, weight=0.4, kind="topic"),
                            metadata=AUTH)
    assert (rel.relation.a_id, rel.relation.b_id, rel.relation.kind) == (m.id, turn.memory.id, "topic")
    got = await stub.GetMemory(pb.GetMemoryRequest(id=m.id), metadata=AUTH)
    assert got.memory.access_count >= 1 and {r.kind for r in got.relations} >= {"topic", "temporal"}

    assert (await stub.DeleteMemory(pb.DeleteMemoryRequest(id=m.id), metadata=AUTH)).changed
    got = await stub.GetMemory(pb.GetMemoryRequest(id=m.id), metadata=AUTH)
    assert got.memory.delete_reason == pb.DELETE_REASON_REQUESTED
    restored = await stub.RestoreMemory(pb.RestoreMemoryRequest(id=m.id), metadata=AUTH)
    assert restored.memory.delete_reason == pb.DELETE_REASON_UNSPECIFIED

    report = await stub.Consolidate(pb.ConsolidateRequest(), metadata=AUTH)
    assert report.merged == 0 and report.duration.ToNanoseconds() > 0
    stats = await stub.GetStats(pb.GetStatsRequest(), metadata=AUTH)
    # Three vectors: the English memory is in MiniLM and in the cross-language channel (also after its
    # restore), the Chinese one in the cross-language channel only.
    assert (stats.active_memories, stats.turns, stats.indexed_vectors, stats.dimension) == (2, 1, 3, 384)
    assert stats.consolidated_at.seconds > 0 and stats.index_saved_at.seconds > 0 and stats.lexical_terms > 0


async def test_bad_input_gets_precise_statuses(stub: pb_grpc.MemoryServiceStub) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    calls = [
        stub.AddMemory(pb.AddMemoryRequest(text=""), metadata=AUTH),
        stub.AddMemory(pb.AddMemoryRequest(text="x" * 9000), metadata=AUTH),
        stub.AddMemory(pb.AddMemoryRequest(text="ok text", importance=-0.1), metadata=AUTH),
        stub.Recall(pb.RecallRequest(), metadata=AUTH),
        stub.Recall(pb.RecallRequest(vector=pb.QueryVector(values=[0.5] * 10)), metadata=AUTH),
        stub.Recall(pb.RecallRequest(vector=pb.QueryVector(values=[math.nan] * 384)), metadata=AUTH),
        stub.Recall(pb.RecallRequest(vector=pb.QueryVector(values=[math.inf] * 384)), metadata=AUTH),
        stub.Recall(pb.RecallRequest(text="hello", top_k=1000), metadata=AUTH),
        stub.Recall(pb.RecallRequest(text="hello", spread_steps=-1), metadata=AUTH),
        stub.Recall(pb.RecallRequest(text="hello", recency_half_life=Duration(seconds=-5)), metadata=AUTH),
        stub.IngestTurn(pb.IngestTurnRequest(session_id="s", turn_id="", user_text="hi"), metadata=AUTH),
        stub.Relate(pb.RelateRequest(a_id=1, b_id=1, weight=0.5), metadata=AUTH),
    ]
    for call in calls:
        assert await _code(call) == invalid
    for missing in (stub.GetMemory(pb.GetMemoryRequest(id=987654), metadata=AUTH),
                    stub.DeleteMemory(pb.DeleteMemoryRequest(id=987654), metadata=AUTH),
                    stub.RestoreMemory(pb.RestoreMemoryRequest(id=987654), metadata=AUTH),
                    stub.Relate(pb.RelateRequest(a_id=987654, b_id=987655, weight=0.5), metadata=AUTH)):
        assert await _code(missing) == grpc.StatusCode.NOT_FOUND


async def test_a_token_is_required_when_configured(stub: pb_grpc.MemoryServiceStub) -> None:
    assert await _code(stub.GetStats(pb.GetStatsRequest())) == grpc.StatusCode.UNAUTHENTICATED


async def test_client_recalls_context_ingests_and_survives_an_outage(server: MemoryServer,
                                                                   spans: InMemorySpanExporter) -> None:
    client = MemoryClient.connect(server.address, TOKEN, recall_timeout_s=5.0)
    try:
        mid = await client.ingest_turn("s7", "t1", "My son Ben is scared of thunderstorms.", "Poor Ben!")
        assert mid is not None
        assert await client.ingest_turn("s7", "t2", "ok", "Anything else?") is None  # small talk
        with trace.get_tracer("test").start_as_current_span("turn") as turn:
            lines = await client.recall_context("s7", "what is my boy afraid of?")
        assert lines and lines[0].endswith("My son Ben is scared of thunderstorms.") and lines[0].startswith("[")
        # The server's stage spans joined the caller's trace (traceparent in the metadata).
        stages = [s for s in spans.get_finished_spans() if s.name.startswith("memory.")]
        in_turn = {s.name for s in stages if s.context.trace_id == turn.get_span_context().trace_id}
        assert {"memory.recall", "memory.vector", "memory.spread", "memory.fetch", "memory.rerank"} <= in_turn
    finally:
        await client.close()

    await server.stop()  # the memory server goes away: the dialog must carry on
    client = MemoryClient.connect(server.address, TOKEN, recall_timeout_s=0.5, ingest_timeout_s=0.5)
    try:
        assert await client.recall_context("s7", "what is my boy afraid of?") == []
        assert await client.ingest_turn("s7", "t3", "I like rain.", "Me too.") is None
    finally:
        await client.close()


async def test_serve_only_memory_starts_the_component(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--memory-embedder", "use-m3", only=["memory"])
    try:
        assert set(mesh.addresses) == {"memory"}
        channel = open_channel(mesh.addresses["memory"], mesh.token)
        stub = pb_grpc.MemoryServiceStub(channel)
        await stub.AddMemory(pb.AddMemoryRequest(text="我的血型是AB型。"))
        hits = await stub.Recall(pb.RecallRequest(text="我是什么血型？", top_k=1))
        assert hits.memories[0].memory.text == "我的血型是AB型。"
        stats = await stub.GetStats(pb.GetStatsRequest())
        assert stats.embedding_model == "universal-sentence-encoder-multilingual-3" and stats.dimension == 512
        await channel.close()
    finally:
        await mesh.stop()
    assert (data_dir / "memory.db").exists() and any((data_dir / "memory_index").rglob("vectors.json"))
