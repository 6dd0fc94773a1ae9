"""One trace per turn with spans for the first token and the first audio chunk."""

from __future__ import annotations

from pathlib import Path

from meshkit import Conversation, start_test_mesh
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.rpc.channels import open_channel


async def test_a_turn_is_one_trace_with_latency_spans(data_dir: Path, spans: InMemorySpanExporter) -> None:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "2", only=["tts", "core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="traced")
            talk.say("hello")
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
    finally:
        await mesh.stop()
    finished = {s.name: s for s in spans.get_finished_spans()}
    turn = finished["dialog.turn"]
    assert turn.attributes is not None and turn.attributes["peromesh.correlation_id"] == "traced#1"
    for child in ("llm.first_token", "tts.first_chunk"):
        span = finished[child]
        assert span.context.trace_id == turn.context.trace_id and span.parent is not None
        assert span.parent.span_id == turn.context.span_id
        assert span.end_time is not None and span.start_time is not None and span.end_time <= turn.end_time
