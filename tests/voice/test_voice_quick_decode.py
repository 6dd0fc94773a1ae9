"""The quick decode a barge-in is judged on (real espeak-ng audio, Whisper base): it costs a
fraction of the full window's CPU and still tells a one-word interrupt from a backchannel."""

from __future__ import annotations

import time

import numpy as np
import pytest
from voice.voice_helpers import speak, word_error_rate

from server.asr.transcriber import QUICK_FRAMES, SAMPLE_RATE, WhisperTranscriber, quick_window_frames
from server.dialog.barge_in import is_backchannel
from server.tts.espeak import EspeakEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def _samples(pcm: bytes) -> np.ndarray:
    """As the recognizer cuts a clip: 300 ms pre-roll, the clip, 200 ms of trailing silence."""
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return np.concatenate([np.zeros(4800, np.float32), audio, np.zeros(3200, np.float32)])


@pytest.mark.parametrize(("said", "backchannel"), [("Stop.", False), ("Wait.", False), ("yeah", True),
                                                   ("okay", True), ("I see", True)])
async def test_a_quick_decode_tells_an_interrupt_from_a_backchannel(
        whisper_base: WhisperTranscriber, espeak: EspeakEngine, said: str, backchannel: bool) -> None:
    quick = whisper_base.transcribe(_samples(await speak(espeak, said, "en")), quick=True)
    assert quick.text and is_backchannel(quick.text) is backchannel, quick


async def test_a_quick_decode_costs_a_fraction_of_a_full_one(
        whisper_base: WhisperTranscriber, espeak: EspeakEngine) -> None:
    audio = _samples(await speak(espeak, "Stop.", "en"))
    whisper_base.warm()

    def cpu_s(quick: bool) -> float:  # CPU time, not wall time: the machine is shared
        started = time.process_time()
        whisper_base.transcribe(audio, quick=quick)
        return time.process_time() - started

    full, fast = min(cpu_s(False) for _ in range(2)), min(cpu_s(True) for _ in range(2))
    assert fast < full / 2, (fast, full)


async def test_a_long_clip_is_not_decoded_in_the_short_window(
        whisper_base: WhisperTranscriber, espeak: EspeakEngine) -> None:
    said = "Wait, what time is my meeting with the doctor tomorrow?"
    audio = _samples(await speak(espeak, said, "en"))
    assert "meeting" in whisper_base.transcribe(audio, quick=True).text.lower()


@pytest.mark.parametrize("said", ["What should I pack for a weekend by the sea?",
                                  "Tell me something cheerful before I go to work."])
async def test_a_sentence_decodes_alike_in_a_window_cut_to_its_length(
        whisper_base: WhisperTranscriber, espeak: EspeakEngine, said: str) -> None:
    audio = _samples(await speak(espeak, said, "en"))
    frames = quick_window_frames(len(audio) / SAMPLE_RATE)
    assert frames < QUICK_FRAMES, frames  # the case under test: a window shorter than 15 s
    quick, full = whisper_base.transcribe(audio, quick=True), whisper_base.transcribe(audio)
    assert word_error_rate([full.text], [quick.text]) <= 0.1, (quick.text, full.text)

    def cpu_s(window: int) -> float:
        started = time.process_time()
        whisper_base._decode(audio, window, None)
        return time.process_time() - started

    assert min(cpu_s(frames) for _ in range(2)) < min(cpu_s(QUICK_FRAMES) for _ in range(2))
