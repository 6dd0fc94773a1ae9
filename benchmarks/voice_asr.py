"""ASR on this machine: Whisper RTF per model, and end of speech → final transcript.

- rtf: decode time / audio duration for a ~3 s and a ~10 s utterance (Whisper always encodes a
  30 s window, so short audio has a high RTF: the per-update cost is what partials pay).
- end_of_speech: speech (piper, or espeak-ng without it) fed at real time in 100 ms chunks, then
  silence; time from the last voiced sample to the FinalTranscript event, with the VAD finding the
  end (includes the 700 ms end-silence) and with the client's is_end right after the speech.
Prints JSON lines.

Usage: .venv/bin/python benchmarks/voice_asr.py [--reps 3] [--models base,tiny.en]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np

from server.asr.streaming import FinalTranscript, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber, load_transcriber
from server.tts import piper_engine
from server.tts.engine import SpeechEngine
from server.tts.espeak import EspeakEngine

RATE = 16000
SHORT = "Please remind me to call my mother this evening."
LONG = ("The weather is lovely today, let us go for a walk in the park. "
        "I would like a cup of coffee with milk and no sugar.")


async def speech(engine: SpeechEngine, text: str) -> bytes:
    return b"".join([pcm async for pcm in engine.synthesize(text, "en", "", RATE)])


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


async def end_of_speech(transcriber: WhisperTranscriber, pcm: bytes, use_is_end: bool) -> tuple[float, str]:
    recognizer = StreamingRecognizer(transcriber)
    final: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for event in recognizer.events():
            if isinstance(event, FinalTranscript) and event.text and not final.done():
                final.set_result((time.perf_counter(), event.text))

    reader = asyncio.create_task(read())
    step = RATE // 10 * 2
    for i in range(0, len(pcm), step):
        await recognizer.feed(pcm[i:i + step], RATE)
        await asyncio.sleep(0.1)
    speech_end = time.perf_counter()
    if use_is_end:
        await recognizer.end()
    else:
        for _ in range(30):  # up to 3 s of silence, at real time
            await recognizer.feed(b"\0\0" * (RATE // 10), RATE)
            if final.done():
                break
            await asyncio.sleep(0.1)
    done_at, text = await asyncio.wait_for(final, 60)
    await recognizer.close()
    reader.cancel()
    return done_at - speech_end, text


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="base,tiny.en")
    args = parser.parse_args()
    voice: SpeechEngine = piper_engine.PiperEngine() if piper_engine.available() else EspeakEngine()
    short, long = await speech(voice, SHORT), await speech(voice, LONG)
    for name in args.models.split(","):
        started = time.perf_counter()
        transcriber = await asyncio.to_thread(load_transcriber, name)
        load_s = time.perf_counter() - started
        transcriber.transcribe(as_float(short))  # warm-up
        for label, pcm in (("short", short), ("long", long)):
            audio = as_float(pcm)
            times = [transcriber.transcribe(audio).decode_s for _ in range(args.reps)]
            print(json.dumps({"model": name, "load_s": round(load_s, 2), "audio": label,
                              "audio_s": round(len(audio) / RATE, 2),
                              "decode_s_median": round(statistics.median(times), 3),
                              "rtf_median": round(statistics.median(times) / (len(audio) / RATE), 3)}), flush=True)
        for use_is_end in (False, True):
            runs = [await end_of_speech(transcriber, short, use_is_end) for _ in range(args.reps)]
            latencies = [r[0] * 1000 for r in runs]
            print(json.dumps({"model": name, "voice": voice.name,
                              "end": "is_end" if use_is_end else "vad (700 ms silence)",
                              "speech_end_to_final_ms_median": round(statistics.median(latencies)),
                              "max_ms": round(max(latencies)), "text": runs[-1][1]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
