"""A full turn over a real Converse stream: event order, audio framing, history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import Conversation, kinds, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.llm.prompt import fixed_prefix
from server.llm.scripted import DEFAULT_TEXT
from server.llm.tokens import tokenize
from server.rpc.channels import open_channel


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "10", only=["tts", "core"])
    yield mesh
    await mesh.stop()


async def test_turn_streams_text_and_audio_in_contract_order(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="flow-1")
        started = await talk.next()
        assert started.session_started.session_id == "flow-1"
        talk.say("Hello, who are you?")
        events = await talk.until_state(pb.STATE_IDLE)
        await talk.close()

    turn_id = "flow-1#1"
    assert all(e.turn_id == turn_id for e in events)
    assert events[0].state_update.state == pb.STATE_THINKING
    names = kinds(events)
    deltas = [e.assistant_delta.text_delta for e in events if e.HasField("assistant_delta")]
    assert "".join(deltas) == DEFAULT_TEXT and len(deltas) == len(tokenize(DEFAULT_TEXT)) >= 60
    # audio starts while the model is still generating
    assert names.index("audio_chunk") < len(names) - 1 - names[::-1].index("assistant_delta")
    assert names.index("audio_begin") < names.index("audio_chunk")
    assert names[-3:] == ["audio_end", "metrics", "state_update"]
    assert names.index("assistant_final") < names.index("audio_end")  # speech may outlast the text
    begin = next(e.audio_begin for e in events if e.HasField("audio_begin"))
    assert (begin.sample_rate_hertz, begin.channels, begin.format) == (24000, 1, pb.AUDIO_FORMAT_PCM_S16LE)
    chunks = [e.audio_chunk for e in events if e.HasField("audio_chunk")]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(4096 <= len(c.pcm) <= 16384 and len(c.pcm) % 2 == 0 for c in chunks)
    seconds = sum(len(c.pcm) for c in chunks) / 2 / 24000
    assert seconds > 5, "espeak-ng should speak the whole answer"
    final = next(e.assistant_final for e in events if e.HasField("assistant_final"))
    assert final.text == DEFAULT_TEXT and not final.interrupted and final.heard_text == DEFAULT_TEXT
    metrics = next(e.metrics for e in events if e.HasField("metrics"))
    assert 0 < metrics.t_first_delta_ms <= metrics.t_first_audio_ms <= metrics.t_total_ms
    assert metrics.tokens == len(deltas)
    assert next(e for e in events if e.HasField("audio_end")).audio_end.chunk_count == len(chunks)


async def test_history_is_kept_and_fed_back_as_context(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        first = Conversation(channel)
        first.config(session_id="hist", text_only=True)
        first.say("My cat is called Miso.")
        await first.until_state(pb.STATE_IDLE)
        first.half_close()
        await first.rest()

        again = Conversation(channel)  # a new stream joins the same session
        again.config(session_id="hist", text_only=True)
        started = await again.next()
        assert started.session_started.history_turns == 1
        again.say("What is my cat called?")
        events = await again.until_state(pb.STATE_IDLE)
        await again.close()
    assert events[0].turn_id == "hist#2"
    provider = mesh.core.deps.llm
    messages = provider.calls[-1].messages
    fixed = fixed_prefix(messages)  # the system message and its worked example (server/llm/prompt.py)
    assert [m.role for m in messages[fixed:]] == ["user", "assistant", "user"]
    assert messages[fixed].content == "My cat is called Miso." and messages[fixed + 1].content == DEFAULT_TEXT


async def test_half_close_finishes_the_turn_then_ends_the_stream(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="half")
        talk.say("Tell me something.")
        talk.half_close()
        events = await talk.rest()
    names = kinds(events)
    assert names[0] == "session_started" and names[-1] == "state_update"
    assert events[-1].state_update.state == pb.STATE_IDLE
    assert "audio_end" in names and "assistant_final" in names


async def test_text_only_session_sends_no_audio(mesh: Mesh, spans: object) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(text_only=True)
        started = await talk.next()
        assert len(started.session_started.session_id) == 16  # created by the server
        talk.say("hi")
        events = await talk.until_state(pb.STATE_IDLE)
        await talk.close()
    assert not {"audio_begin", "audio_chunk", "audio_end"} & set(kinds(events))


async def test_announcement_waits_for_the_running_turn_then_is_spoken(mesh: Mesh) -> None:
    dialog = mesh.core.dialog
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="announce", device_id="desk")
        talk.say("tell me a story")
        await talk.until("assistant_delta")
        assert await dialog.announce("Time to stretch!", ["phone"]) == 0  # another device: not here
        assert await dialog.announce("Time to stretch!") == 1  # queued behind the running turn
        first = await talk.until_state(pb.STATE_IDLE)
        second = await talk.until_state(pb.STATE_IDLE)
        await talk.close()
    assert {e.turn_id for e in first if e.turn_id} == {"announce#1"}
    assert second[0].turn_id == "announce#2" and second[0].state_update.state == pb.STATE_THINKING
    spoken = "".join(e.assistant_delta.text_delta for e in second if e.HasField("assistant_delta"))
    assert spoken == "Time to stretch!" and any(e.HasField("audio_chunk") for e in second)
    history = await mesh.core.deps.history.stored("announce")
    assert [m.role for m in history] == ["user", "assistant", "assistant"]
