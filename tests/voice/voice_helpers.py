"""Shared helpers for the voice tests: speech fixtures, text normalisation, error rates."""

from __future__ import annotations

import re
import unicodedata

import jiwer

from server.tts.engine import SpeechEngine

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


def _words(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer([_words(r) for r in references], [_words(h) for h in hypotheses]))


def _han(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isalnum())


def character_error_rate(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.cer([_han(r) for r in references], [_han(h) for h in hypotheses]))
