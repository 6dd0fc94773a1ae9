"""The real transformers path with SmolLM2 (a packaged model): streaming, stop, KV-cache reuse, shared prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.llm.base import ChatMessage, LlmRequest
from server.llm.factory import warm_up
from server.llm.local import LocalTransformersProvider
from server.llm.prompt import build_messages, fixed_prefix
from server.rpc.channels import open_channel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def provider(model_dir: Path) -> Iterator[LocalTransformersProvider]:
    yield LocalTransformersProvider(model_dir, threads=2, temperature=0.0)


def ask(text: str, session: str = "", history: list[ChatMessage] | None = None, tokens: int = 12) -> LlmRequest:
    messages = [ChatMessage("system", "You are a helpful assistant."), *(history or []), ChatMessage("user", text)]
    return LlmRequest(messages, session, tokens)


async def test_streams_text_token_by_token(provider: LocalTransformersProvider) -> None:
    deltas = [d async for d in provider.stream(ask("What is the capital of France?", tokens=16))]
    assert len(deltas) >= 3 and "".join(deltas).strip()
    assert provider.last_new_tokens <= 16


async def test_closing_the_stream_stops_generation_within_a_token(provider: LocalTransformersProvider) -> None:
    stream = provider.stream(ask("Write a long story about a dragon.", tokens=200))
    first = await anext(stream)
    assert first
    await stream.aclose()
    # the first delta may hold a few tokens (word-level decoding); generation stopped right after
    assert provider.last_new_tokens <= 6


async def test_session_cache_avoids_re_encoding_the_history(provider: LocalTransformersProvider) -> None:
    history: list[ChatMessage] = []
    for turn, question in enumerate(["Hi, I am Ana.", "I like green tea.", "What do I like?"]):
        request = ask(question, "cache-session", history, tokens=10)
        answer = "".join([d async for d in provider.stream(request)])
        rendered = provider._render(request.messages).shape[1]
        if turn == 0:  # a new session: all of it, or all after a system prompt an earlier test shared
            assert provider.last_prefill_tokens <= rendered
        else:
            assert provider.last_prefill_tokens < rendered / 2, (provider.last_prefill_tokens, rendered)
        history += [ChatMessage("user", question), ChatMessage("assistant", answer)]


async def test_a_turn_encodes_only_its_own_message_notes_and_memories_included(
        provider: LocalTransformersProvider) -> None:
    """The view keeps each note as sent (server/llm/kv_cache.py); a new session starts after the fixed
    persona (the system prompt and its language's example)."""
    await warm_up(provider)  # the server's warm-up: each language's fixed prefix is shared from here on
    fixed = build_messages([], "x")
    system = provider._render(fixed[:fixed_prefix(fixed)], generation_prompt=False).shape[1]
    history: list[ChatMessage] = []
    for turn, question in enumerate(["My sister lives in Lyon.", "I like green tea.", "What do I like?"]):
        request = LlmRequest(build_messages(history, question, [f"[2026-11-2{turn}] I have a cat"]), "notes", 10)
        answer = "".join([d async for d in provider.stream(request)])
        own = len(provider.tokenizer(request.messages[-1].content).input_ids)
        if turn == 0:
            assert provider.last_prefill_tokens == provider._render(request.messages).shape[1] - system
        # the message, its chat markers and the previous answer's end marker; never the last exchange again
        assert own < provider.last_prefill_tokens <= own + 12, (turn, provider.last_prefill_tokens, own)
        history += [ChatMessage("user", question), ChatMessage("assistant", answer)]


async def test_dialog_turn_with_the_real_model(model_dir: Path, data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, "--llm", "local", "--model-dir", str(model_dir), "--max-new-tokens", "12",
                                 only=["tts", "core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="real")
            talk.say("Say hello in one short sentence.")
            events = await talk.until_state(pb.STATE_IDLE, timeout=120)
            await talk.close()
    finally:
        await mesh.stop()
    final = next(e.assistant_final for e in events if e.HasField("assistant_final"))
    deltas = "".join(e.assistant_delta.text_delta for e in events if e.HasField("assistant_delta"))
    assert final.text.strip() and final.text == deltas
    assert any(e.HasField("audio_chunk") for e in events)
