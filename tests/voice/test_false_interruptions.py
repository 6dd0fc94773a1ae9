"""No false interruptions (real audio through the real stack: espeak-ng speech, Whisper, Smart Turn).

Speech during playback pauses the answer (LISTENING, audio held) and is judged: a backchannel or a
noise burst resumes it (SPEAKING of the same turn, more audio, no audio_cancel, no new turn); a real
sentence, or one word like "stop", cuts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
import soxr
from meshkit import Conversation, kinds, start_test_mesh
from voice.voice_helpers import send_audio, silence, speak

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.rpc.channels import open_channel
from server.tts.espeak import EspeakEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    # A slow scripted reply (≈15 s of generation) keeps the turn speaking while the user talks.
    mesh = await start_test_mesh(tmp_path_factory.mktemp("false-interruptions"), "--asr-model", "base",
                                 "--scripted-delay-ms", "150", "--tts-engines", "espeak-ng",
                                 # the microphone is fed only while a test speaks, so its clock is not
                                 # the playback's: no guard window here (test_guard_window.py has its own)
                                 "--echo-guard", "0", only=["tts", "core"])
    yield mesh
    await mesh.stop()


def noise_burst(seconds: float = 0.6, seed: int = 13) -> bytes:
    """Broadband noise with a clap-like envelope (a chair, a door), 16 kHz PCM16."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = np.exp(-np.linspace(0, 6, n))
    return (rng.normal(0, 9000, n) * envelope).clip(-32767, 32767).astype("<i2").tobytes()


async def speaking_turn(talk: Conversation, session: str) -> str:
    talk.config(session_id=session)
    await talk.next()
    talk.say("tell me about my day")
    await talk.until("audio_chunk", turn_id=f"{session}#1")
    return f"{session}#1"


async def until_resumed_or_cut(talk: Conversation, turn_id: str) -> list[pb.ConverseResponse]:
    """Events until the turn resumes (SPEAKING after a LISTENING) or is cut (audio_cancel)."""
    seen: list[pb.ConverseResponse] = []
    paused = False
    while True:
        event = await talk.next(60)
        seen.append(event)
        if event.HasField("audio_cancel"):
            return seen
        if event.HasField("state_update"):
            paused = paused or event.state_update.state == pb.STATE_LISTENING
            if paused and event.turn_id == turn_id and event.state_update.state == pb.STATE_SPEAKING:
                return seen


@pytest.mark.parametrize("what", ["mm hmm", "yeah", "noise"])
async def test_a_backchannel_or_noise_during_playback_does_not_cut_the_answer(
        mesh: Mesh, espeak: EspeakEngine, what: str) -> None:
    audio = noise_burst() if what == "noise" else await speak(espeak, what, "en")
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        turn_id = await speaking_turn(talk, f"fi-{what.replace(' ', '')}")
        sender = asyncio.create_task(send_audio(talk, silence(0.2) + audio + silence(1.5)))
        if what == "noise":  # the VAD may not call it speech at all: then nothing pauses
            await sender
            await asyncio.sleep(1.0)
            seen = [e for e in [await talk.next(60) for _ in range(3)]]
        else:
            seen = await until_resumed_or_cut(talk, turn_id)
            await sender
        seen += await talk.until("audio_chunk", turn_id=turn_id, timeout=30)  # it plays on
        names = kinds(seen)
        assert "audio_cancel" not in names and "assistant_final" not in names, names
        finals = [e for e in seen if e.HasField("transcription") and e.transcription.is_final]
        assert all(not e.turn_id for e in finals), finals  # no turn of its own
        talk.interrupt()
        await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()


@pytest.mark.parametrize("said", ["Wait, what time is my meeting with the doctor tomorrow?", "Stop."])
async def test_real_speech_during_playback_cuts_the_answer(mesh: Mesh, espeak: EspeakEngine, said: str) -> None:
    audio = await speak(espeak, said, "en")
    session = "fi-real" if len(said) > 10 else "fi-stop"
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        turn_id = await speaking_turn(talk, session)
        await send_audio(talk, silence(0.2) + audio + silence(1.0))
        seen = await until_resumed_or_cut(talk, turn_id)
        assert seen[-1].HasField("audio_cancel") and seen[-1].turn_id == turn_id, kinds(seen)
        seen += await talk.until_state(pb.STATE_INTERRUPTED)
        while not any(e.HasField("transcription") and e.transcription.is_final for e in seen):
            seen.append(await talk.next(60))
        final = next(e for e in seen if e.HasField("transcription") and e.transcription.is_final)
        assert final.turn_id == f"{session}#2", final  # what was said is answered
        talk.interrupt()
        await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()


async def test_the_mesh_hearing_its_own_voice_does_not_interrupt_itself(mesh: Mesh) -> None:
    """A client without echo cancellation: the answer's own audio comes back as user_audio."""
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="fi-echo")
        await talk.next()
        talk.send(user_audio=pb.UserAudio(pcm=silence(0.1), sample_rate_hertz=16000))  # a voice client
        talk.say("tell me about my day")
        played = b""
        while len(played) < 24000 * 2 * 3:  # three seconds of what the speaker plays
            event = await talk.next(60)
            if event.HasField("audio_chunk") and event.turn_id == "fi-echo#1":
                played += event.audio_chunk.pcm
        samples = np.frombuffer(played, dtype="<i2").astype(np.float32)
        echo = (soxr.resample(samples, 24000, 16000) * 0.5).astype("<i2").tobytes()  # quieter, via the room
        await send_audio(talk, silence(0.2) + echo + silence(1.5))
        seen = await until_resumed_or_cut(talk, "fi-echo#1")
        seen += await talk.until("audio_chunk", turn_id="fi-echo#1", timeout=30)
        await asyncio.sleep(3.0)
        while not talk.events.empty():
            event = talk.events.get_nowait()
            assert event is not None
            seen.append(event)
        names = kinds(seen)
        assert "audio_cancel" not in names, names
        assert not [e for e in seen if e.HasField("transcription") and e.transcription.is_final and e.turn_id]
        talk.interrupt()
        await talk.until_state(pb.STATE_INTERRUPTED)
        await talk.close()
