"""Semantic end of turn with real speech, real Whisper and the real Smart Turn model.

The recognizer is fed whole stretches of audio at once and `settle()` waits for
the verdict of the silence fed so far, so the outcome depends on what was said
and heard, not on how fast two shared cores decode. Piper speaks without its
sampling noise (`steady_piper`): the same audio on every run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from voice.voice_helpers import silence, steady_piper

from server.asr.streaming import FinalTranscript, RecognitionEvent, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber
from server.asr.turn_detector import TurnDetector, load_turn_detector
from server.tts.piper_engine import PiperEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]
FIRST, REST = "I want to tell you about", "my trip to Paris last summer."
FINISHED = "I would like a cup of coffee with milk and no sugar."


@pytest.fixture(scope="module")
def smart_turn() -> TurnDetector:
    detector = load_turn_detector()
    assert detector.available, "the Smart Turn model is not installed (pipecat-ai==1.14.0 --no-deps)"
    return detector


def finals(recognizer: StreamingRecognizer) -> list[FinalTranscript]:
    """The finals emitted so far (other events are dropped)."""
    out: list[FinalTranscript] = []
    queue = recognizer._events
    while not queue.empty():
        event: RecognitionEvent | object = queue.get_nowait()
        if isinstance(event, FinalTranscript):
            out.append(event)
    return out


async def test_a_pause_inside_an_unfinished_sentence_keeps_one_turn(
        piper: PiperEngine, whisper_base: WhisperTranscriber, smart_turn: TurnDetector) -> None:
    first, rest = await steady_piper(piper, FIRST), await steady_piper(piper, REST)
    recognizer = StreamingRecognizer(whisper_base, turn_detector=smart_turn)
    await recognizer.feed(silence(0.3) + first + silence(0.9))
    verdict = await recognizer.settle()
    assert verdict is not None and not verdict.complete, verdict
    await recognizer.drain()
    assert finals(recognizer) == []  # 0.9 s of silence did not end it
    await recognizer.feed(rest + silence(0.4))
    verdict = await recognizer.settle()
    await recognizer.drain()
    heard = finals(recognizer)
    await recognizer.close()
    assert verdict is not None and verdict.complete, verdict
    assert len(heard) == 1 and heard[0].reason == "end_of_turn", heard
    text = heard[0].text.lower()
    assert "about" in text and "paris" in text, text


async def test_silence_alone_splits_the_same_sentence(piper: PiperEngine, whisper_base: WhisperTranscriber,
                                                      tmp_path: Path) -> None:
    """What the detector prevents (and the fallback when its model is absent): 700 ms of silence ends it."""
    first, rest = await steady_piper(piper, FIRST), await steady_piper(piper, REST)
    recognizer = StreamingRecognizer(whisper_base, turn_detector=load_turn_detector(str(tmp_path / "absent.onnx")))
    await recognizer.feed(silence(0.3) + first + silence(0.9) + rest + silence(0.8))
    await recognizer.drain()
    heard = finals(recognizer)
    await recognizer.close()
    assert [f.reason for f in heard] == ["end_of_speech", "end_of_speech"], heard
    assert "about" in heard[0].text.lower() and "paris" in heard[1].text.lower(), heard
    assert all(0.69 <= f.silence_s <= 0.75 for f in heard), heard


async def test_a_finished_sentence_ends_after_a_short_silence(
        piper: PiperEngine, whisper_base: WhisperTranscriber, smart_turn: TurnDetector, tmp_path: Path) -> None:
    speech = silence(0.3) + await steady_piper(piper, FINISHED) + silence(0.25)
    recognizer = StreamingRecognizer(whisper_base, turn_detector=smart_turn)
    await recognizer.feed(speech)  # and nothing more: this short silence must be enough
    await recognizer.settle()
    await recognizer.drain()
    heard = finals(recognizer)
    await recognizer.close()
    assert len(heard) == 1 and heard[0].reason == "end_of_turn", heard
    assert "coffee" in heard[0].text.lower() and heard[0].silence_s <= 0.45, heard[0]
    # Silence-only (no model file) waits for 700 ms: the same short silence ends nothing.
    fallback = StreamingRecognizer(whisper_base, turn_detector=load_turn_detector(str(tmp_path / "absent.onnx")))
    await fallback.feed(speech)
    assert await fallback.settle() is None
    await fallback.drain()
    assert finals(fallback) == []
    await fallback.feed(silence(0.6))
    await fallback.drain()
    heard = finals(fallback)
    await fallback.close()
    assert [f.reason for f in heard] == ["end_of_speech"] and "coffee" in heard[0].text.lower(), heard


async def test_a_sentence_trailing_off_waits_for_the_long_limit(
        piper: PiperEngine, whisper_base: WhisperTranscriber, smart_turn: TurnDetector) -> None:
    """Judged unfinished, nothing more said: the turn still ends, at the long limit."""
    recognizer = StreamingRecognizer(whisper_base, turn_detector=smart_turn)
    await recognizer.feed(silence(0.3) + await steady_piper(piper, FIRST) + silence(1.0))
    verdict = await recognizer.settle()
    assert verdict is not None and not verdict.complete, verdict
    await recognizer.feed(silence(1.6))
    await recognizer.drain()
    heard = finals(recognizer)
    await recognizer.close()
    assert [f.reason for f in heard] == ["end_of_speech"] and 2.45 <= heard[0].silence_s <= 2.6, heard
