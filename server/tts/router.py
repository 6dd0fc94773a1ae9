"""Route each segment to the engine for its language, with espeak-ng behind all.

Engines are tried in preference order; when a preferred engine fails before it
produced audio, the segment is spoken by the next one (ultimately espeak-ng),
so a broken neural voice degrades speech instead of silencing it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from peromesh.server.tts.engine import SpeechEngine
from peromesh.server.tts.language import detect_language

log = logging.getLogger(__name__)


@dataclass
class SpokenAudio:
    """One piece of a segment's audio and who spoke it."""

    pcm: bytes
    engine: str


class EngineRouter:
    def __init__(self, engines: Sequence[SpeechEngine]) -> None:
        if not engines:
            raise ValueError("at least one speech engine is required")
        self.engines = list(engines)

    def candidates(self, language: str) -> list[SpeechEngine]:
        return [e for e in self.engines if e.supports(language)] or [self.engines[-1]]

    async def speak(self, text: str, language_hint: str, voice: str, rate: int) -> AsyncIterator[SpokenAudio]:
        language = detect_language(text, language_hint)
        candidates = self.candidates(language)
        for index, engine in enumerate(candidates):
            produced = False
            try:
                async for pcm in engine.synthesize(text, language, voice, rate):
                    produced = True
                    yield SpokenAudio(pcm, engine.name)
                return
            except Exception as exc:
                if produced or index == len(candidates) - 1:
                    raise
                log.warning("%s failed (%s); falling back to %s", engine.name, exc, candidates[index + 1].name)
