"""The whole memory loop through the mesh: a turn is ingested via the outbox, recalled next turn, one trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.rpc.channels import open_channel

pytestmark = pytest.mark.slow


async def test_turn_is_ingested_then_recalled_into_the_next_prompt(data_dir: Path,
                                                                    spans: InMemorySpanExporter) -> None:
    mesh = await start_test_mesh(data_dir, "--memory-embedder", "minilm", "--scripted-delay-ms", "1",
                                 only=["memory", "core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="mem-a", text_only=True)
            talk.say("My sister Alice lives in Lisbon and works as a marine biologist.")
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
        relay = mesh.core.events.relay
        for _ in range(400):
            if await relay.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        assert await relay.backlog() == 0
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="mem-b", text_only=True)  # another session: only long-term memory knows
            talk.say("Where does my sister live?")
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
    finally:
        await mesh.stop()
    prompt = mesh.core.deps.llm.calls[-1].messages[-1].content
    assert "Lisbon" in prompt and prompt.endswith("Where does my sister live?")
    finished = spans.get_finished_spans()
    turn = next(s for s in finished if s.name == "dialog.turn" and s.attributes
                and s.attributes.get("peromesh.correlation_id") == "mem-a#1")
    ingest = [s for s in finished if s.name == "memory.ingest"]
    assert any(s.context.trace_id == turn.context.trace_id for s in ingest), "ingestion joins the turn's trace"
