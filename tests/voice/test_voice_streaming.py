"""StreamingRecognizer: speech start, partials before the final, VAD endpointing, coughs ignored."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from voice.voice_helpers import ENGLISH, silence, speak, word_error_rate

from server.asr.streaming import (
    FinalTranscript,
    PartialTranscript,
    RecognitionEvent,
    SpeechStarted,
    StreamingRecognizer,
)
from server.asr.transcriber import DecodeSkipped, WhisperTranscriber
from server.tts.engine import SpeechEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
RATE = 16000
CHUNK = RATE // 10 * 2  # 100 ms of PCM16


async def feed_paced(recognizer: StreamingRecognizer, pcm: bytes, speed: float) -> None:
    """Feed like a microphone (`speed` × real time), in 100 ms chunks."""
    for i in range(0, len(pcm), CHUNK):
        await recognizer.feed(pcm[i:i + CHUNK], RATE)
        await asyncio.sleep(0.1 / speed)


async def collect_until_final(recognizer: StreamingRecognizer, timeout: float = 60) -> list[RecognitionEvent]:
    events: list[RecognitionEvent] = []

    async def read() -> None:
        async for event in recognizer.events():
            events.append(event)
            if isinstance(event, FinalTranscript):
                return

    await asyncio.wait_for(read(), timeout)
    return events


async def test_partials_arrive_before_the_final_which_the_vad_ends(
        piper: SpeechEngine, whisper_tiny_en: WhisperTranscriber) -> None:
    speech = silence(0.5) + b"".join([await speak(piper, text, "en") for text in ENGLISH[:2]]) + silence(1.5)
    recognizer = StreamingRecognizer(whisper_tiny_en)
    reader = asyncio.create_task(collect_until_final(recognizer))
    await feed_paced(recognizer, speech, speed=1.0)  # no is_end: the VAD must find the end
    events = await reader
    await recognizer.close()
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SpeechStarted" and kinds[-1] == "FinalTranscript", kinds
    assert isinstance(events[0], SpeechStarted) and 0.2 <= events[0].at_s <= 1.0
    partials = [e for e in events if isinstance(e, PartialTranscript)]
    assert partials, f"no partial transcript before the final: {events}"
    final = events[-1]
    assert isinstance(final, FinalTranscript) and final.reason == "end_of_speech"
    assert word_error_rate([" ".join(ENGLISH[:2])], [final.text]) <= 0.15, final.text
    assert word_error_rate([final.text[:len(partials[0].text)]], [partials[0].text]) <= 0.5
    print(f"\npartials {[p.text for p in partials]}\nfinal {final.text!r} latency {final.latency_s:.2f}s")


async def test_a_cough_or_noise_is_not_speech(piper: SpeechEngine, whisper_tiny_en: WhisperTranscriber) -> None:
    words = np.frombuffer(await speak(piper, ENGLISH[1], "en"), dtype="<i2")
    onset = int(np.nonzero(np.abs(words) > 600)[0][0])
    burst = words[onset:onset + int(0.15 * RATE)].tobytes()  # 150 ms of voice: shorter than min_speech_ms
    noise = (np.random.default_rng(7).standard_normal(RATE) * 8000).astype("<i2").tobytes()
    recognizer = StreamingRecognizer(whisper_tiny_en)
    await recognizer.feed(silence(0.5) + burst + silence(0.8) + noise + silence(0.5))
    await recognizer.end()
    events = await collect_until_final(recognizer)
    await recognizer.close()
    assert len(events) == 1 and isinstance(events[0], FinalTranscript), events
    assert events[0].text == "" and events[0].reason == "is_end"


async def test_is_end_finalises_at_once_with_any_rate_and_odd_chunks(
        espeak: SpeechEngine, whisper_base: WhisperTranscriber) -> None:
    # (tiny.en mishears espeak-ng's robotic voice; base does not)
    speech = await speak(espeak, ENGLISH[2], "en", rate=8000)
    recognizer = StreamingRecognizer(whisper_base)
    for i in range(0, len(speech), 333):  # odd sizes split samples across chunks
        await recognizer.feed(speech[i:i + 333], 8000)
    await recognizer.end()
    events = await collect_until_final(recognizer)
    await recognizer.close()
    final = events[-1]
    assert isinstance(final, FinalTranscript) and final.reason == "is_end"
    assert word_error_rate([ENGLISH[2]], [final.text]) <= 0.15, final.text


async def test_a_queued_decode_no_longer_wanted_is_skipped_when_its_turn_comes(
        piper: SpeechEngine, whisper_tiny_en: WhisperTranscriber) -> None:
    """A pause that resumes into speech leaves its speculative decode stale: one still queued
    behind another decode must not run (it would delay the final behind it)."""
    audio = (np.frombuffer(await speak(piper, ENGLISH[0], "en"), "<i2") / 32768).astype(np.float32)
    gate = threading.Event()  # holds the first decode on the lane's thread until the second is queued
    wanted = [True]
    first = asyncio.create_task(whisper_tiny_en.transcribe_async(
        audio, urgent=True, quick=True, wanted=lambda: gate.wait(30)))
    second = asyncio.create_task(whisper_tiny_en.transcribe_async(
        audio, urgent=True, quick=True, wanted=lambda: wanted[0]))
    await asyncio.sleep(0)  # both jobs are in the lane: the first waits at its gate, the second behind it
    wanted[0] = False  # speech resumed: the second is stale
    gate.set()
    assert word_error_rate([ENGLISH[0]], [(await first).text]) < 0.3
    with pytest.raises(DecodeSkipped):
        await second
    assert not whisper_tiny_en.busy


async def test_a_final_s_guess_stays_wanted_when_the_next_utterance_pauses(
        piper: SpeechEngine, whisper_tiny_en: WhisperTranscriber) -> None:
    """Audio that arrives faster than decodes (an upload): the first utterance's guess is its final
    and must still run when a later utterance's pause makes that later guess stale."""
    first, second, third = [await speak(piper, text, "en") for text in ENGLISH[:3]]
    audio = silence(0.3) + first + silence(1.0) + second + silence(0.15) + third
    recognizer = StreamingRecognizer(whisper_tiny_en)
    await recognizer.feed(audio, RATE)  # all at once: no decode has started yet
    await recognizer.end()
    finals = [e for e in await asyncio.wait_for(_events_until_is_end(recognizer), 60)
              if isinstance(e, FinalTranscript)]
    await recognizer.close()
    assert [f.reason for f in finals] == ["end_of_speech", "is_end"], finals
    assert word_error_rate([ENGLISH[0]], [finals[0].text]) <= 0.2, finals[0]
    assert word_error_rate([" ".join(ENGLISH[1:3])], [finals[1].text]) <= 0.2, finals[1]


async def _events_until_is_end(recognizer: StreamingRecognizer) -> list[RecognitionEvent]:
    events: list[RecognitionEvent] = []
    async for event in recognizer.events():
        events.append(event)
        if isinstance(event, FinalTranscript) and event.reason == "is_end":
            break
    return events
