"""Speech over a real Converse stream: user_audio → transcription events → a turn; barge-in by voice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from meshkit import Conversation, kinds, start_test_mesh
from voice.voice_helpers import ENGLISH, send_audio, silence, speak

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.core import Core
from server.app.root import Mesh
from server.llm.scripted import ScriptedProvider
from server.rpc.channels import open_channel
from server.tts.engine import SpeechEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    # A slow scripted reply (≈15 s of generation) keeps the turn speaking while the user talks.
    mesh = await start_test_mesh(tmp_path_factory.mktemp("voice-dialog"), "--asr-model", "tiny.en",
                                 "--scripted-delay-ms", "150", "--tts-engines", "espeak-ng",
                                 only=["tts", "core"])
    yield mesh
    await mesh.stop()


async def until_final_transcription(talk: Conversation, seen: list[pb.ConverseResponse]) -> pb.ConverseResponse:
    while True:
        event = await talk.next(60)
        seen.append(event)
        if event.HasField("transcription") and event.transcription.is_final:
            return event


def drain(talk: Conversation) -> list[pb.ConverseResponse]:
    out = []
    while not talk.events.empty():
        event = talk.events.get_nowait()
        assert event is not None
        out.append(event)
    return out


def scripted(mesh: Mesh) -> ScriptedProvider:
    core = mesh.core
    assert isinstance(core, Core) and isinstance(core.llm, ScriptedProvider)
    return core.llm


async def test_speech_is_transcribed_and_starts_a_turn(mesh: Mesh, piper: SpeechEngine) -> None:
    speech = await speak(piper, ENGLISH[2], "en")  # (not a command the tool port would answer)
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="voice-turn")
        assert (await talk.next()).HasField("session_started")
        await send_audio(talk, silence(0.3) + speech, is_end=True)
        seen: list[pb.ConverseResponse] = []
        final = await until_final_transcription(talk, seen)
        turn_id = final.turn_id
        assert turn_id == "voice-turn#1" and "coffee" in final.transcription.text.lower(), (final, kinds(seen))
        assert pb.STATE_LISTENING in [e.state_update.state for e in seen if e.HasField("state_update")]
        events = await talk.until("assistant_final", turn_id=turn_id)
        assert "assistant_delta" in kinds(events)
        mouth = [e.audio_chunk.visemes["mouth_open"] for e in events if e.HasField("audio_chunk")]
        assert mouth and all(0.0 <= m <= 1.0 for m in mouth) and max(mouth) > 0.3  # lip-sync envelope
        assert "cup of coffee" in scripted(mesh).calls[-1].messages[-1].content.lower()
        talk.interrupt()
        await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()


async def test_voice_barges_in_during_playback_but_a_cough_does_not(mesh: Mesh, piper: SpeechEngine) -> None:
    speech = await speak(piper, ENGLISH[2], "en")
    samples = np.frombuffer(speech, dtype="<i2")
    onset = int(np.nonzero(np.abs(samples) > 600)[0][0])
    cough = samples[onset:onset + int(0.15 * 16000)].tobytes()
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="voice-barge")
        await talk.next()
        talk.say("tell me about my day")
        await talk.until("audio_chunk", turn_id="voice-barge#1")  # the assistant is speaking
        await send_audio(talk, silence(0.2) + cough + silence(0.8))
        await asyncio.sleep(0.5)
        assert "audio_cancel" not in kinds(drain(talk)), "a 150 ms cough must not cut the assistant off"
        await send_audio(talk, speech + silence(1.0))
        seen = await talk.until("audio_cancel", turn_id="voice-barge#1", timeout=30)
        seen += await talk.until_state(pb.STATE_INTERRUPTED)
        final = await until_final_transcription(talk, seen)
        assert final.turn_id == "voice-barge#2" and "coffee" in final.transcription.text.lower()
        cut = [e for e in seen if e.turn_id == "voice-barge#1"]
        after = kinds(cut)[kinds(cut).index("audio_cancel") + 1:]
        assert not {"audio_chunk", "assistant_delta"} & set(after), after
        talk.interrupt()
        await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()


async def test_voice_stops_audio_still_playing_after_the_turn_completed(
        tmp_path_factory: pytest.TempPathFactory, piper: SpeechEngine) -> None:
    # A fast reply: the turn is complete within a second or two, its ~20 s of speech is not.
    fast = await start_test_mesh(tmp_path_factory.mktemp("voice-playout"), "--asr-model", "tiny.en",
                                 "--scripted-delay-ms", "2", "--tts-engines", "espeak-ng", only=["tts", "core"])
    try:
        speech = await speak(piper, ENGLISH[2], "en")
        async with open_channel(fast.addresses["core"], fast.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="playout")
            await talk.next()
            talk.say("tell me about my day")
            done = await talk.until_state(pb.STATE_IDLE)
            assert "audio_end" in kinds(done) and "audio_cancel" not in kinds(done)
            await send_audio(talk, speech + silence(1.0))
            seen: list[pb.ConverseResponse] = []
            final = await until_final_transcription(talk, seen)
            cancels = [e for e in seen if e.HasField("audio_cancel")]
            assert [e.turn_id for e in cancels] == ["playout#1"], kinds(seen)
            assert cancels[0].audio_cancel.chunks_sent == kinds(done).count("audio_chunk")
            assert kinds(seen).index("audio_cancel") < kinds(seen).index("transcription")
            assert final.turn_id == "playout#2"
            # Saying how much was played makes the stop deterministic: turn 2 (2 ms a token) may
            # already be complete when the interrupt arrives, and an interrupt without played_ms
            # counts a completed answer's delivered audio as heard (test_played_ms.py).
            talk.send(interrupt=pb.Interrupt(played_ms=200))
            await talk.until_state(pb.STATE_INTERRUPTED)
            await talk.close()
    finally:
        await fast.stop()
