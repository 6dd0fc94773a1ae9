"""Turn-taking over a real Converse stream (gRPC, Whisper base, Smart Turn): the speech models are
warm when the core is up, a pause inside an unfinished sentence keeps one turn, a finished sentence
ends after a short silence, and without the model file the core falls back to silence alone."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from meshkit import Conversation, start_test_mesh
from voice.voice_helpers import send_audio, silence, steady_piper

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.asr.speech_input import SpeechLoader
from server.rpc.channels import open_channel
from server.tts.piper_engine import PiperEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
FIRST, REST = "I want to tell you about", "my trip to Paris last summer."
FINISHED = "I would like a cup of coffee with milk and no sugar."


async def core_mesh(folder: Path, *flags: str) -> Mesh:
    return await start_test_mesh(folder, "--asr-model", "base", "--scripted-delay-ms", "5", *flags, only=["core"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    mesh = await core_mesh(tmp_path_factory.mktemp("turn-taking"))
    yield mesh
    await mesh.stop()


async def transcription_containing(talk: Conversation, word: str) -> pb.ConverseResponse:
    """The next transcription (partial or final) whose text contains `word`."""
    while True:
        event = await talk.next(90)
        if event.HasField("transcription") and word in event.transcription.text.lower():
            return event


async def next_final(talk: Conversation) -> pb.ConverseResponse:
    while True:
        event = await talk.next(90)
        if event.HasField("transcription") and event.transcription.is_final:
            return event


async def test_the_speech_models_are_warm_when_the_core_is_up(mesh: Mesh) -> None:
    loader: SpeechLoader = mesh.core.deps.asr
    started = time.perf_counter()
    models = await loader()  # loaded, and run once, during start: nothing left to do
    assert time.perf_counter() - started < 0.05
    assert models.transcriber._warmed and models.turn_detector is not None and models.turn_detector.available


async def test_a_pause_inside_a_sentence_keeps_one_turn(mesh: Mesh, piper: PiperEngine) -> None:
    first, rest = await steady_piper(piper, FIRST), await steady_piper(piper, REST)
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="pause", text_only=True)
        await talk.next()
        await send_audio(talk, silence(0.3) + first + silence(0.9))
        # The recognizer's decode of the paused utterance goes out as a partial (held) or a final
        # (split). Only then does the speaker go on, whatever the cores' speed.
        held = await transcription_containing(talk, "about")
        assert not held.transcription.is_final, f"the pause ended the turn: {held}"
        await send_audio(talk, rest + silence(0.3))
        final = await next_final(talk)
        text = final.transcription.text.lower()
        assert "about" in text and "paris" in text and final.turn_id == "pause#1", final
        await talk.until_state(pb.STATE_IDLE)
        await talk.close()


async def test_a_finished_sentence_ends_after_a_short_silence(
        mesh: Mesh, piper: PiperEngine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="server.asr.streaming")
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="finished", text_only=True)
        await talk.next()
        # 250 ms of silence and then no more audio (and no is_end): silence alone would wait for 700.
        await send_audio(talk, silence(0.3) + await steady_piper(piper, FINISHED) + silence(0.25))
        final = await next_final(talk)
        assert "coffee" in final.transcription.text.lower() and final.turn_id == "finished#1", final
        ended = [r.getMessage() for r in caplog.records if "ended:" in r.getMessage()]
        assert len(ended) == 1 and "end_of_turn" in ended[0], ended  # judged complete, not timed out
        await talk.until_state(pb.STATE_IDLE)
        await talk.close()


async def test_without_the_model_file_silence_alone_ends_turns(
        tmp_path_factory: pytest.TempPathFactory, piper: PiperEngine) -> None:
    folder = tmp_path_factory.mktemp("turn-fallback")
    fallback = await core_mesh(folder, "--turn-model", str(folder / "absent.onnx"))
    try:
        models = await fallback.core.deps.asr()
        assert models.turn_detector is not None and not models.turn_detector.available
        async with open_channel(fallback.addresses["core"], fallback.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="fallback", text_only=True)
            await talk.next()
            await send_audio(talk, silence(0.3) + await steady_piper(piper, FINISHED) + silence(0.9))
            final = await next_final(talk)
            assert "coffee" in final.transcription.text.lower(), final
            await talk.until_state(pb.STATE_IDLE)
            await talk.close()
    finally:
        await fallback.stop()
