"""Shared helpers for the voice tests: speech fixtures, text normalisation, error rates."""

from __future__ import annotations

import asyncio
import re
import unicodedata

import jiwer
import numpy as np
import soxr
from meshkit import Conversation

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.tts.engine import SpeechEngine
from server.tts.piper_engine import PiperEngine

ENGLISH = [
    "The weather is lovely today, let us go for a walk in the park.",
    "Please remind me to call my mother this evening.",
    "I would like a cup of coffee with milk and no sugar.",
]
MANDARIN = [
    "今天天气很好，我们一起去公园散步吧。",
    "请提醒我今天晚上给妈妈打电话。",
    "我想喝一杯咖啡，加牛奶不加糖。",
]


async def speak(engine: SpeechEngine, text: str, language: str, rate: int = 16000) -> bytes:
    """All of one engine's PCM16 audio for `text` at `rate`."""
    return b"".join([pcm async for pcm in engine.synthesize(text, language, "", rate)])


def silence(seconds: float, rate: int = 16000) -> bytes:
    return b"\0\0" * int(seconds * rate)


async def send_audio(talk: Conversation, pcm: bytes, speed: float = 2.0, is_end: bool = False) -> None:
    """16 kHz PCM as `user_audio` in 100 ms chunks, paced at `speed` × real time like a microphone."""
    chunk = 3200
    for i in range(0, len(pcm), chunk):
        talk.send(user_audio=pb.UserAudio(pcm=pcm[i:i + chunk], sample_rate_hertz=16000))
        await asyncio.sleep(0.1 / speed)
    if is_end:
        talk.send(user_audio=pb.UserAudio(is_end=True))


def _words(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([_words(r) for r in references], [_words(h) for h in hypotheses]))


def _han(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isalnum())


def character_error_rate(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.cer([_han(r) for r in references], [_han(h) for h in hypotheses]))


async def steady_piper(engine: PiperEngine, text: str, rate: int = 16000) -> bytes:
    """Piper's voice without its sampling noise: the same text gives the same audio on every run
    (its default varies the prosody per call, enough to swing the end-of-turn model's verdict)."""
    from piper import SynthesisConfig

    voice = await engine._loaded()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, config)])
    audio = soxr.resample(audio, voice.config.sample_rate, rate)
    return np.asarray(np.clip(audio, -1.0, 1.0) * 32767, dtype="<i2").tobytes()
