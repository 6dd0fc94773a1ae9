"""user_audio ended with is_end and then a half-close: the utterance is still transcribed and answered.

A text turn sent just before a half-close is answered; speech must be too, though its transcript
only exists after the client has stopped sending.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from meshkit import Conversation, kinds, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.rpc.channels import open_channel
from server.tts.espeak import EspeakEngine

pytestmark = pytest.mark.slow
CHUNK = 3200  # 100 ms at 16 kHz


async def test_speech_ended_then_half_closed_is_answered(data_dir: Path) -> None:
    speech = b"".join([pcm async for pcm in EspeakEngine().synthesize(
        "Please remind me to buy a cup of coffee.", "en", "", 16000)])
    mesh = await start_test_mesh(data_dir, "--asr-model", "tiny.en", "--turn-model", "none",
                                 "--scripted-delay-ms", "1", only=["core"])
    try:
        async with open_channel(mesh.addresses["core"], mesh.token) as channel:
            talk = Conversation(channel)
            talk.config(session_id="half-voice", text_only=True)
            for i in range(0, len(speech), CHUNK):  # sent at once: the recogniser is still busy at the end
                talk.send(user_audio=pb.UserAudio(pcm=speech[i:i + CHUNK], sample_rate_hertz=16000))
            talk.send(user_audio=pb.UserAudio(is_end=True))
            talk.half_close()
            events = await talk.rest(120)
    finally:
        await mesh.stop()
    names = kinds(events)
    transcripts = [e.transcription for e in events if e.HasField("transcription") and e.transcription.is_final]
    assert transcripts and "coffee" in transcripts[-1].text.lower(), names
    assert "assistant_final" in names and events[-1].state_update.state == pb.STATE_IDLE, names
    assert events[-1].turn_id == "half-voice#1"
